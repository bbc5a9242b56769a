/*
 * ebank-auth reference bank app: the page side of passkeys (WebAuthn).  A static file, no
 * inline script, so the Content-Security-Policy `script-src 'self'` holds.
 *
 * #passkey-panel carries what this script needs:
 *   data-action  "register" (navigator.credentials.create) or "login" (navigator.credentials.get)
 *   data-begin   URL answering POST (JSON, X-CSRF-Token header) with {"options": ...}: the
 *                server's PublicKeyCredential{Creation,Request}OptionsJSON, or {"error": text}
 *   data-tx-id   (optional) sent in the begin request's JSON body
 * The result, the credential as JSON (what credential.toJSON() gives), goes into the hidden
 * field "credential" of the form #passkey-result, which is then submitted (its csrf_token
 * field included): the server verifies it and answers with the next page.
 *
 * base64url <-> ArrayBuffer is done here, so browsers without
 * PublicKeyCredential.parseCreationOptionsFromJSON / toJSON work too.
 */
(function () {
  'use strict';

  var panel = document.getElementById('passkey-panel');
  if (!panel) return;
  var action = panel.getAttribute('data-action');
  var button = document.getElementById('passkey-go');
  var statusLine = document.getElementById('passkey-status');
  var messages = document.getElementById('passkey-messages');
  var form = document.getElementById('passkey-result');

  function text(name) { return messages.getAttribute('data-' + name) || ''; }
  function say(message, isError) {
    statusLine.textContent = message;
    statusLine.className = isError ? 'error' : 'notice';
  }

  function fromB64url(s) {
    var b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var out = { type: d.type, id: fromB64url(d.id) };
      if (d.transports) out.transports = d.transports;
      return out;
    });
  }

  function creationOptions(o) {
    var pk = Object.assign({}, o);
    pk.challenge = fromB64url(o.challenge);
    pk.user = Object.assign({}, o.user, { id: fromB64url(o.user.id) });
    pk.excludeCredentials = descriptors(o.excludeCredentials);
    return pk;
  }

  function requestOptions(o) {
    var pk = Object.assign({}, o);
    pk.challenge = fromB64url(o.challenge);
    if (o.allowCredentials) pk.allowCredentials = descriptors(o.allowCredentials);
    return pk;
  }

  function credentialJSON(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (action === 'register') {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = typeof r.getTransports === 'function' ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults(),
      response: response
    };
  }

  function begin() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var body = {};
    var txId = panel.getAttribute('data-tx-id');
    if (txId) body.tx_id = txId;
    return fetch(panel.getAttribute('data-begin'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': meta ? meta.content : '' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store'
    }).then(function (resp) {
      return resp.json().then(function (data) {
        if (resp.status !== 200 || !data.options) throw new Error(data.error || text('failed'));
        return data.options;
      }, function () { throw new Error(text('failed')); });
    });
  }

  function ceremony(options) {
    if (action === 'register') {
      return navigator.credentials.create({ publicKey: creationOptions(options) });
    }
    return navigator.credentials.get({ publicKey: requestOptions(options) });
  }

  function go() {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(text('unsupported'), true);
      return;
    }
    button.disabled = true;
    say(text('wait'), false);
    begin().then(ceremony).then(function (cred) {
      if (!cred) throw new Error(text('cancelled'));
      form.querySelector('input[name="credential"]').value = JSON.stringify(credentialJSON(cred));
      form.submit();
    }).catch(function (err) {
      // NotAllowedError: the customer cancelled, timed out, or no passkey matched
      var cancelled = err && (err.name === 'NotAllowedError' || err.name === 'AbortError');
      say(cancelled ? text('cancelled') : (err && err.message) || text('failed'), true);
      button.disabled = false;
    });
  }

  button.addEventListener('click', go);
  panel.setAttribute('data-passkey-state', 'ready');
})();
