/*
 * ebank-auth reference bank app: the page side of the USB Key (static file, no inline script).
 *
 * The page talks to the local signing agent (`ebank-auth agent serve`, loopback only) with
 * fetch(); the agent talks to the token over PC/SC.  The agent answers only origins it was
 * configured for, and only callers that paired first (POST /v1/pair with this page session's
 * binding).  The PIN field has no name attribute: it is never part of a form sent to the bank,
 * only of the request to the agent on this computer, and it is cleared at once.
 *
 * Actions (data-action on #usbkey-panel):
 *   sign         -> POST /v1/sign {transaction (the canonical fields the server rendered), pin}
 *                   then the form #usbkey-result carries signature, signed bytes, serial, binding
 *   enrol        -> POST /v1/enrol {pin} then #usbkey-result carries serial, public key, attestation
 *   certificate  -> POST /v1/certificate {certificate} (stores the bank's certificate on the token)
 *   authenticate -> POST /v1/authenticate {challenge, pin} then #usbkey-result carries signature
 * A refusal on the token (409 rejected / 408 timeout) submits #usbkey-cancel with the reason.
 */
(function () {
  'use strict';

  var panel = document.getElementById('usbkey-panel');
  if (!panel) return;
  var agent = panel.getAttribute('data-agent');
  var action = panel.getAttribute('data-action');
  var statusLine = document.getElementById('usbkey-status');
  var messages = document.getElementById('usbkey-messages');
  var button = document.getElementById('usbkey-go');
  var pinField = document.getElementById('usbkey-pin');
  var pairing = null;

  function text(name) { return messages.getAttribute('data-' + name) || ''; }
  function say(message, isError) {
    statusLine.textContent = message;
    statusLine.className = isError ? 'error' : 'notice';
  }

  function call(method, path, body) {
    var headers = { 'Content-Type': 'application/json' };
    if (pairing) headers.Authorization = 'Bearer ' + pairing;
    return fetch(agent + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      mode: 'cors',
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer'
    }).then(function (resp) {
      return resp.json().then(function (data) {
        return { status: resp.status, data: data };
      }, function () { return { status: resp.status, data: {} }; });
    });
  }

  function pair() {
    if (pairing) return Promise.resolve();
    return call('POST', '/v1/pair', { binding: panel.getAttribute('data-binding') })
      .then(function (r) {
        if (r.status !== 200 || typeof r.data.pairing !== 'string') throw new Error('pair');
        pairing = r.data.pairing;
      });
  }

  function takePin() {
    if (!pinField) return '';
    var pin = pinField.value;
    pinField.value = '';
    return pin;
  }

  function setField(form, name, value) {
    var field = form.querySelector('input[name="' + name + '"]');
    if (field) field.value = value;
  }

  function cancel(reason) {
    var form = document.getElementById('usbkey-cancel');
    if (!form) return;
    setField(form, 'reason', reason);
    form.submit();
  }

  function refused(r) {
    var code = r.data && r.data.error;
    if (code === 'rejected') { say(text('rejected'), true); cancel('rejected'); return; }
    if (code === 'timeout') { say(text('timeout'), true); cancel('timeout'); return; }
    if (code === 'pin_incorrect') {
      say(text('pin-wrong').replace('{n}', String(r.data.retries_left)), true);
    } else if (code === 'pin_locked') {
      say(text('pin-locked'), true);
    } else {
      say((r.data && r.data.message) || text('failed'), true);
    }
    if (button) button.disabled = false;
  }

  function request() {
    var pin = takePin();
    if (action === 'sign') {
      var tx = JSON.parse(panel.getAttribute('data-tx'));
      return call('POST', '/v1/sign', {
        transaction: tx, pin: pin, lang: panel.getAttribute('data-lang') || 'zh', serial: null
      });
    }
    if (action === 'enrol') return call('POST', '/v1/enrol', { pin: pin, serial: null });
    if (action === 'authenticate') {
      return call('POST', '/v1/authenticate', {
        challenge: panel.getAttribute('data-challenge'), pin: pin, serial: null
      });
    }
    return call('POST', '/v1/certificate', {
      certificate: panel.getAttribute('data-certificate'), pin: pin,
      serial: panel.getAttribute('data-serial')
    });
  }

  function done(r) {
    if (r.status !== 200) { refused(r); return; }
    var form = document.getElementById('usbkey-result');
    var d = r.data;
    if (action === 'certificate') {
      say(text('stored'), false);
      if (button) button.hidden = true;
      return;
    }
    if (action === 'sign') {
      setField(form, 'signature', d.signature);
      setField(form, 'signed', d.signed);
      setField(form, 'serial', d.serial);
      setField(form, 'binding', d.binding);
    } else if (action === 'enrol') {
      setField(form, 'serial', d.serial);
      setField(form, 'public_key', d.public_key);
      setField(form, 'attestation', d.attestation);
      if (!form.reportValidity()) { if (button) button.disabled = false; return; }
    } else {
      setField(form, 'signature', d.signature);
      setField(form, 'serial', d.serial);          // registering the login key only
      setField(form, 'public_key', d.public_key);
    }
    form.submit();
  }

  function run() {
    if (button) button.disabled = true;
    if (action === 'sign') say(text('wait'), false);
    pair().then(request).then(done, function () {
      say(text('unreachable'), true);
      if (button) button.disabled = false;
    });
  }

  if (button) button.addEventListener('click', run);
})();
