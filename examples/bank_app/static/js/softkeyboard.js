/*
 * ebank-auth soft keyboard, browser client (SK-1..3).
 *
 * Loaded as a static file after the vendored sm-crypto bundles (sm2.js, sm3.js): the page
 * carries no inline script, so a Content-Security-Policy of script-src 'self' holds.
 *
 * Markup it expects (see docs/softkeyboard.md, "In the browser"):
 *   <form data-softkeyboard data-session-url="/softkeyboard/session"
 *         data-switch-url="/softkeyboard/switch"> ... </form>
 * It fills (creating them when absent) the hidden fields sk_session, sk_keystrokes (JSON list
 * of hex ciphertexts), sk_commitment (hex) and sk_switched ("1" after the switch to the system
 * keyboard).  Each key press is encrypted at once to the server's SM2 key; the page keeps only
 * ciphertexts and a count, never the password.  Anything unexpected disables the form
 * (fail closed): nothing is ever sent in the clear.
 */
(function () {
  'use strict';

  var MAGIC = [0x53, 0x4b, 0x31]; // "SK1"
  var COMMIT_LABEL = [0x53, 0x4b, 0x31, 0x2d, 0x4c, 0x45, 0x4e]; // "SK1-LEN"
  // DER of the SM2 curve OID 1.2.156.10197.1.301: the key must name it.
  var SM2_CURVE_OID_HEX = '06082a811ccf5501822d';

  function hexToBytes(hex) {
    if (typeof hex !== 'string' || hex.length % 2 !== 0 || /[^0-9a-f]/.test(hex)) {
      throw new Error('not lower-case hex');
    }
    var out = [];
    for (var i = 0; i < hex.length; i += 2) out.push(parseInt(hex.substr(i, 2), 16));
    return out;
  }

  function bytesToHex(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
    return s;
  }

  function asciiBytes(text) {
    var out = [];
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c < 0x20 || c > 0x7e) throw new Error('not printable ASCII');
      out.push(c);
    }
    return out;
  }

  // The server's SubjectPublicKeyInfo (DER hex) -> the 04||x||y point sm-crypto takes.
  function publicKeyPoint(spkiHex) {
    if (spkiHex.indexOf(SM2_CURVE_OID_HEX) < 0) throw new Error('server key is not an SM2 key');
    var point = spkiHex.slice(-130);
    // the key is the last field: BIT STRING, 66 bytes, no unused bits, uncompressed point
    if (spkiHex.slice(-136, -130) !== '034200' || point.slice(0, 2) !== '04') {
      throw new Error('server key is not an uncompressed SM2 point');
    }
    return point;
  }

  function derLength(n) {
    if (n < 0x80) return [n];
    if (n < 0x100) return [0x81, n];
    return [0x82, n >> 8, n & 0xff];
  }

  function derInteger(bytes) {
    var i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    var body = bytes.slice(i);
    if (body[0] & 0x80) body = [0].concat(body);
    return [0x02].concat(derLength(body.length), body);
  }

  function derOctets(bytes) {
    return [0x04].concat(derLength(bytes.length), bytes);
  }

  // sm-crypto cipherMode 1 gives x1||y1||C3||C2 in hex (C1 without its 04 prefix); our server
  // decrypts GM/T 0009 DER SEQUENCE { INTEGER x1, INTEGER y1, OCTET STRING C3, OCTET STRING C2 }.
  function c1c3c2ToDer(hex) {
    var raw = hexToBytes(hex);
    if (raw.length <= 96) throw new Error('short SM2 ciphertext');
    var body = [].concat(
      derInteger(raw.slice(0, 32)),
      derInteger(raw.slice(32, 64)),
      derOctets(raw.slice(64, 96)),
      derOctets(raw.slice(96))
    );
    return bytesToHex([0x30].concat(derLength(body.length), body));
  }

  // GM/T 0003-4 (SM2 encryption) step A5: when t = KDF(x2 || y2, klen) is all zeros, choose
  // a new k.  sm-crypto skips that check; t is all zeros exactly when C2 equals the message,
  // which a short message meets often enough (1 in 256 for one byte) to matter, and a
  // conforming decrypter refuses such a ciphertext.  So: encrypt again until C2 differs.
  function encryptC1C3C2(message, point) {
    var messageHex = bytesToHex(message);
    for (var attempt = 0; attempt < 16; attempt++) {
      var raw = window.sm2.doEncrypt(message, point, 1);
      if (raw.slice(192) !== messageHex) return raw;
    }
    throw new Error('SM2 encryption kept producing an all-zero key stream');
  }

  function Client(view) {
    if (typeof window.sm2 === 'undefined' || typeof window.sm3 !== 'function') {
      throw new Error('sm-crypto is not loaded');
    }
    this.sessionId = view.session_id;
    this.sid = hexToBytes(view.session_id);
    if (this.sid.length !== 16) throw new Error('bad session id');
    this.mode = view.mode;
    this.keyIds = view.key_ids || [];
    this.point = publicKeyPoint(view.public_key_der_hex);
    this.commitKey = view.commit_key_hex;
    hexToBytes(this.commitKey);
    if (!this.commitKey) throw new Error('no commit key');
    this.ciphertexts = [];
  }

  Client.prototype.push = function (valueBytes) {
    var index = this.ciphertexts.length;
    var record = MAGIC.concat(this.sid, [index >> 8, index & 0xff], valueBytes);
    var raw = encryptC1C3C2(record, this.point);
    this.ciphertexts.push(c1c3c2ToDer(raw));
  };

  Client.prototype.press = function (keyId) {
    if (this.mode === 'system' || this.keyIds.indexOf(keyId) < 0) {
      throw new Error('that key is not on this keyboard');
    }
    this.push(asciiBytes(keyId));
  };

  Client.prototype.typeChar = function (ch) {
    if (this.mode !== 'system') throw new Error('this session uses the soft keyboard');
    this.push(asciiBytes(ch));
  };

  Client.prototype.backspace = function () {
    this.ciphertexts.pop();
  };

  // length (2 bytes BE) || HMAC-SM3(commit key, "SK1-LEN" || session id || length)
  Client.prototype.commitment = function () {
    var n = this.ciphertexts.length;
    var len = [n >> 8, n & 0xff];
    var mac = window.sm3(COMMIT_LABEL.concat(this.sid, len), { key: this.commitKey, mode: 'hmac' });
    return bytesToHex(len) + mac;
  };

  function hiddenField(form, name) {
    var field = form.querySelector('input[name="' + name + '"]');
    if (!field) {
      field = document.createElement('input');
      field.type = 'hidden';
      field.name = name;
      form.appendChild(field);
    }
    return field;
  }

  function csrfHeaders() {
    var headers = { Accept: 'application/json' };
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) headers['X-CSRF-Token'] = meta.getAttribute('content');
    return headers;
  }

  function fetchView(url, options) {
    options.credentials = 'same-origin';
    options.cache = 'no-store';
    return window.fetch(url, options).then(function (resp) {
      if (!resp.ok) throw new Error('keyboard service answered ' + resp.status);
      return resp.json();
    });
  }

  function Widget(form) {
    this.form = form;
    this.client = null;
    this.switched = false;
    this.fields = {
      session: hiddenField(form, 'sk_session'),
      keystrokes: hiddenField(form, 'sk_keystrokes'),
      commitment: hiddenField(form, 'sk_commitment'),
      switched: hiddenField(form, 'sk_switched')
    };
    this.fields.switched.value = '0';
    this.box = form.querySelector('.sk-keyboard') || form.appendChild(document.createElement('div'));
    this.box.className = 'sk-keyboard';
    this.mask = form.querySelector('.sk-mask');
    if (!this.mask) {
      this.mask = document.createElement('input');
      this.mask.type = 'text';
      this.mask.className = 'sk-mask';
      this.mask.setAttribute('autocomplete', 'off');
      this.mask.setAttribute('aria-label', 'password');
      form.insertBefore(this.mask, this.box);
    }
    this.mask.readOnly = true; // never named: the form never submits what it shows
    this.mask.removeAttribute('name');
    this.status = form.querySelector('.sk-status') || form.appendChild(document.createElement('p'));
    this.status.className = 'sk-status';
    this.status.setAttribute('role', 'status');
    this.bind();
  }

  Widget.prototype.fail = function (err) {
    this.client = null;
    this.fields.keystrokes.value = '';
    this.fields.commitment.value = '';
    var submits = this.form.querySelectorAll('[type="submit"]');
    for (var i = 0; i < submits.length; i++) submits[i].disabled = true;
    this.form.setAttribute('data-sk-state', 'error');
    this.status.textContent = 'The secure keyboard failed (' + (err && err.message) +
      '): reload the page and try again.';
  };

  Widget.prototype.refresh = function () {
    var c = this.client;
    this.mask.value = new Array(c.ciphertexts.length + 1).join('*');
    this.fields.session.value = c.sessionId;
    this.fields.keystrokes.value = JSON.stringify(c.ciphertexts);
    this.fields.commitment.value = c.commitment();
    this.form.setAttribute('data-sk-count', String(c.ciphertexts.length));
  };

  Widget.prototype.load = function (view) {
    this.client = new Client(view);
    while (this.box.firstChild) this.box.removeChild(this.box.firstChild);
    if (this.client.mode !== 'system') {
      var doc = new DOMParser().parseFromString(view.svg, 'image/svg+xml');
      var svg = doc.documentElement;
      if (svg.namespaceURI !== 'http://www.w3.org/2000/svg' || svg.localName !== 'svg') {
        throw new Error('the keyboard drawing is not SVG');
      }
      var scripts = svg.querySelectorAll('script, foreignObject');
      if (scripts.length) throw new Error('the keyboard drawing carries active content');
      this.box.appendChild(document.importNode(svg, true));
    }
    this.refresh();
    this.form.setAttribute('data-sk-mode', this.client.mode);
    this.form.setAttribute('data-sk-state', 'ready');
  };

  Widget.prototype.guard = function (fn) {
    var self = this;
    return function (event) {
      if (!self.client) return;
      try {
        fn.call(self, event);
      } catch (err) {
        self.fail(err);
      }
    };
  };

  Widget.prototype.bind = function () {
    var self = this;
    this.box.addEventListener('click', this.guard(function (event) {
      var key = event.target.closest ? event.target.closest('[data-key-id]') : null;
      if (!key || this.client.mode === 'system') return;
      this.client.press(key.getAttribute('data-key-id'));
      this.refresh();
    }));
    this.mask.addEventListener('keydown', this.guard(function (event) {
      if (event.key === 'Tab' || event.key === 'Enter') return;
      event.preventDefault(); // the character never reaches the field
      if (event.key === 'Backspace') {
        this.client.backspace();
      } else if (this.client.mode === 'system' && event.key.length === 1) {
        this.client.typeChar(event.key);
      } else {
        return;
      }
      this.refresh();
    }));
    // Text that arrives without a key press (paste, drop, IME, on-screen keyboards, autofill)
    // never stays in the field: it would sit in the DOM in clear and not be encrypted.
    var block = function (event) { event.preventDefault(); };
    this.mask.addEventListener('beforeinput', block);
    this.mask.addEventListener('paste', block);
    this.mask.addEventListener('drop', block);
    this.mask.addEventListener('input', function () {
      if (self.client) {
        self.refresh();
        self.status.textContent = 'Only typed keys are accepted here: type the password key by key.';
      } else {
        self.mask.value = '';
      }
    });
    var clear = this.form.querySelector('.sk-backspace');
    if (clear) {
      clear.addEventListener('click', this.guard(function () {
        this.client.backspace();
        this.refresh();
      }));
    }
    var sw = this.form.querySelector('.sk-switch');
    if (sw) {
      sw.addEventListener('click', function () {
        if (!self.client || self.switched) return;
        var url = self.form.getAttribute('data-switch-url');
        var headers = csrfHeaders();
        headers['Content-Type'] = 'application/json';
        fetchView(url, {
          method: 'POST',
          headers: headers,
          body: JSON.stringify({ session_id: self.client.sessionId })
        }).then(function (view) {
          if (view.mode !== 'system') throw new Error('the switch was not granted');
          self.switched = true;
          self.fields.switched.value = '1';
          self.load(view);
          self.mask.readOnly = false;
          self.mask.type = 'password';
          self.mask.focus();
          self.status.textContent = 'System keyboard in use: this is less safe than the ' +
            'secure keyboard and is reported to the bank.';
        }).catch(function (err) { self.fail(err); });
      });
    }
  };

  function start(form) {
    var widget;
    try {
      widget = new Widget(form);
    } catch (err) {
      form.setAttribute('data-sk-state', 'error');
      return;
    }
    fetchView(form.getAttribute('data-session-url'), { method: 'GET', headers: csrfHeaders() })
      .then(function (view) { widget.load(view); })
      .catch(function (err) { widget.fail(err); });
  }

  function init() {
    var forms = document.querySelectorAll('form[data-softkeyboard]');
    for (var i = 0; i < forms.length; i++) start(forms[i]);
  }

  window.ebankSoftKeyboard = {
    c1c3c2ToDer: c1c3c2ToDer,
    encryptC1C3C2: encryptC1C3C2,
    publicKeyPoint: publicKeyPoint
  };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
