// A TradingView authorization tab waiting while the trader registers or opens an account in another tab:
// it polls the onboarding status and, once ready, continues to the same authorization URL (so client_id,
// redirect_uri and state are never lost).
(function () {
  "use strict";
  var box = document.querySelector("[data-tradingview-wait]");
  if (!box) {
    return;
  }
  var statusUrl = box.getAttribute("data-tradingview-wait");
  var next = box.getAttribute("data-tradingview-continue") || "";
  var signin = box.hasAttribute("data-tradingview-signin");
  if (next.indexOf("/tradingview/oauth/authorize?") !== 0) {
    return;
  }
  var delay = 2000;

  function poll() {
    fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (data) {
        if ((signin && data.signed_in && data.ready) || (!signin && data.ready)) {
          window.location.assign(next);
          return;
        }
        delay = 2000;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 20000);
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();
