/*! partnerd tracking script (R-AFF-3, R-AFF-4). Served at /t.js.
 *
 * On the vendor's own pages it:
 *  1. records a click for links that point straight at the site with ?a={partner_id}
 *     (plus utm_campaign, utm_term, sub1..sub5), through partnerd's /t/click;
 *  2. keeps the referral token — from that click, or from ?ref= after a partnerd
 *     /r/ redirect — in a first-party cookie on the vendor's domain;
 *  3. hands the token to sign-up forms: it fills every <input name="partnerd_ref">,
 *     and window.partnerd.referral() returns it.
 *
 * With <script src=".../t.js" data-consent="required">, nothing is stored or sent
 * until the site calls window.partnerd.consent() (after its cookie banner's "accept").
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script ? script.src.replace(/\/t\.js(\?.*)?$/, "") : "";
  var needsConsent = script && script.getAttribute("data-consent") === "required";
  var refParam = (script && script.getAttribute("data-ref-param")) || "ref";
  var cookieName = "partnerd_ref";
  var consented = !needsConsent;
  var pending = [];

  function readCookie() {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === cookieName) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function store(token, days) {
    if (!token) return;
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = cookieName + "=" + encodeURIComponent(token) + "; Max-Age=" + days * 86400 +
      "; Path=/; SameSite=Lax" + secure;
    fillForms();
  }

  function fillForms() {
    var token = readCookie();
    if (!token) return;
    var inputs = document.querySelectorAll('input[name="partnerd_ref"]');
    for (var i = 0; i < inputs.length; i++) inputs[i].value = token;
  }

  function run() {
    var params = new URLSearchParams(location.search);
    var partner = params.get("a");
    var fromRedirect = params.get(refParam);
    if (fromRedirect) {
      // Landed from a partnerd /r/ link: the click is recorded already.
      store(fromRedirect, Number(script && script.getAttribute("data-cookie-days")) || 120);
    } else if (partner && /^[A-Za-z0-9]{6,32}$/.test(partner)) {
      var query = new URLSearchParams({ a: partner });
      ["utm_campaign", "utm_term", "sub1", "sub2", "sub3", "sub4", "sub5"].forEach(function (key) {
        if (params.get(key)) query.set(key === "utm_campaign" ? "c" : key, params.get(key));
      });
      if (document.referrer) query.set("r", document.referrer);
      fetch(base + "/t/click?" + query.toString(), { credentials: "omit", mode: "cors" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) { if (body && body.token) store(body.token, body.cookie_days); })
        .catch(function () { /* tracking never breaks the vendor's page */ });
    }
    fillForms();
  }

  window.partnerd = {
    consent: function () {
      consented = true;
      while (pending.length) pending.shift()();
    },
    referral: function () { return readCookie(); }
  };
  var start = function () { if (consented) run(); else pending.push(run); };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
