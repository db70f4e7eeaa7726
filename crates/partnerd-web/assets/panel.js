/*
 * partnerd — the partner panel's only script. Progressive enhancement: every
 * page works without it (the server renders the link preview and the links
 * are selectable text).
 *
 *   1. Campaign builder: recomputes the link preview while the partner types,
 *      exactly like partnerd_domain::tracking::{campaign_slug, landing_url,
 *      check_landing_url}.
 *   2. Copy buttons: <button data-copy="INPUT-ID" hidden> next to a readonly input.
 *
 * Loaded with <script src="/assets/panel.js" defer> (same origin, CSP-safe).
 */
(function () {
  "use strict";

  var MAX_SLUG = 48;

  /** R-AFF-5: lower-case ASCII letters and digits; any other run of characters
   *  becomes one "-"; trimmed; at most 48; "campaign" when empty; then the offer. */
  function campaignSlug(name, trialDays, discountPercent) {
    var slug = "";
    Array.from(name.trim()).forEach(function (ch) {
      Array.from(ch.toLowerCase()).forEach(function (c) {
        if (/^[a-z0-9]$/.test(c)) {
          slug += c;
        } else if (slug !== "" && slug.charAt(slug.length - 1) !== "-") {
          slug += "-";
        }
      });
    });
    slug = slug.replace(/-+$/, "").slice(0, MAX_SLUG).replace(/-+$/, "");
    if (slug === "") {
      slug = "campaign";
    }
    if (trialDays !== null) {
      slug += "-t" + trialDays;
    }
    if (discountPercent !== null && discountPercent > 0) {
      slug += "-d" + discountPercent;
    }
    return slug;
  }

  /** A select's value as a whole number, or null for "none" / anything else. */
  function wholeNumber(value) {
    var v = value.trim();
    return /^-?\d+$/.test(v) ? Number(v) : null;
  }

  /** The page typed if it is an allowed http(s) URL, else null. */
  function allowedPage(raw, domains) {
    var value = raw.trim();
    if (value === "" || value.length > 2000) {
      return null;
    }
    var url;
    try {
      url = new URL(value);
    } catch (e) {
      return null;
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password) {
      return null;
    }
    var host = url.hostname.toLowerCase();
    var ok = domains.some(function (d) {
      return host === d || host.slice(-(d.length + 1)) === "." + d;
    });
    return ok ? url.toString() : null;
  }

  /** The page plus the UTM tags; the page's own parameters are kept. */
  function landingUrl(page, slug, term) {
    var url;
    try {
      url = new URL(page);
    } catch (e) {
      return page;
    }
    var ours = ["utm_source", "utm_medium", "utm_campaign", "utm_term"];
    var params = new URLSearchParams();
    url.searchParams.forEach(function (v, k) {
      if (ours.indexOf(k) < 0) {
        params.append(k, v);
      }
    });
    params.append("utm_source", "partner");
    params.append("utm_medium", "affiliate");
    params.append("utm_campaign", slug);
    if (term !== "") {
      params.append("utm_term", term);
    }
    url.search = params.toString();
    return url.toString();
  }

  function setupBuilder() {
    var form = document.getElementById("campaign-form");
    if (!form) {
      return;
    }
    var base = form.getAttribute("data-link-base") || "";
    var mainPage = form.getAttribute("data-main-page") || "";
    var domains = (form.getAttribute("data-allowed-domains") || "")
      .split(",")
      .map(function (d) { return d.trim().toLowerCase(); })
      .filter(function (d) { return d !== ""; });
    var field = function (id) { return document.getElementById(id); };
    var out = { slug: field("preview-slug"), link: field("preview-link"), landing: field("preview-landing") };
    if (!out.slug || !out.link || !out.landing) {
      return;
    }

    function update() {
      var slug = campaignSlug(
        field("name").value,
        wholeNumber(field("trial_days").value),
        wholeNumber(field("discount_percent").value)
      );
      var page = allowedPage(field("landing_url").value, domains) || mainPage;
      out.slug.textContent = slug;
      out.link.textContent = base + "/" + slug;
      out.landing.textContent = landingUrl(page, slug, field("custom").value.trim());
    }

    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
  }

  function setupCopyButtons() {
    var status = document.getElementById("copy-status");
    Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
      var input = document.getElementById(button.getAttribute("data-copy"));
      if (!input) {
        return;
      }
      var label = button.textContent;
      var timer = null;
      button.hidden = false;
      input.addEventListener("focus", function () { input.select(); });

      function done(ok) {
        button.textContent = ok ? "Copied" : "Press Ctrl+C";
        button.classList.toggle("is-copied", ok);
        if (status) {
          status.textContent = ok ? "Link copied to the clipboard." : "Copy the selected link with Ctrl+C.";
        }
        clearTimeout(timer);
        timer = setTimeout(function () {
          button.textContent = label;
          button.classList.remove("is-copied");
        }, 2000);
      }

      function fallback() {
        input.focus();
        input.select();
        var ok = false;
        try {
          ok = document.execCommand("copy");
        } catch (e) {
          ok = false;
        }
        done(ok);
      }

      button.addEventListener("click", function () {
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(function () { done(true); }, fallback);
        } else {
          fallback();
        }
      });
    });
  }

  function start() {
    setupBuilder();
    setupCopyButtons();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
