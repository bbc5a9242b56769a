/*
 * ebank-auth reference bank app: the page side of the phone shield (static file, no inline
 * script).  Two pages poll the bank (same origin only):
 *   #phone-enrolment (settings, after the identity step): GET data-state until the phone has
 *     finished the enrolment, then open data-done (the settings page shows the phone shield);
 *   #phone-confirm (a transfer to confirm on the phone): POST data-poll {tx_id} with the CSRF
 *     header until the phone has answered; the server checks the joint signature over the
 *     transaction it recorded and books it, then the page opens data-result.
 */
(function () {
  'use strict';

  var csrf = document.querySelector('meta[name="csrf-token"]');
  var token = csrf ? csrf.getAttribute('content') : '';
  var enrolment = document.getElementById('phone-enrolment');
  var confirm = document.getElementById('phone-confirm');

  function later(fn) { window.setTimeout(fn, 1000); }

  if (enrolment) {
    var stateUrl = enrolment.getAttribute('data-state');
    var done = enrolment.getAttribute('data-done');
    var watch = function () {
      fetch(stateUrl, { cache: 'no-store', credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (s && s.enrolled) { window.location.assign(done); } else { later(watch); }
        })
        .catch(function () { later(watch); });
    };
    later(watch);
  }

  if (confirm) {
    var pollUrl = confirm.getAttribute('data-poll');
    var result = confirm.getAttribute('data-result');
    var txId = confirm.getAttribute('data-tx');
    var poll = function () {
      fetch(pollUrl, {
        method: 'POST',
        cache: 'no-store',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': token },
        body: JSON.stringify({ tx_id: txId })
      })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s && s.status === 'pending') { later(poll); } else { window.location.assign(result); }
        })
        .catch(function () { later(poll); });
    };
    later(poll);
  }
})();
