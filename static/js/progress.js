// Follows work queued by a request (connecting a cTrader ID, refreshing its accounts): polls each
// [data-progress-url] element's JSON endpoint, shows its message, and reloads the page when it is done.
(function () {
  "use strict";
  var pending = Array.prototype.slice.call(document.querySelectorAll("[data-progress-url]"));
  if (!pending.length) {
    return;
  }
  var delay = 1000;
  function poll() {
    Promise.all(
      pending.map(function (element) {
        return fetch(element.getAttribute("data-progress-url"), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        })
          .then(function (response) {
            return response.ok ? response.json() : { finished: true };
          })
          .then(function (job) {
            var text = element.querySelector("[data-progress-text]");
            if (text && job.message) {
              text.textContent = job.message;
            }
            return Boolean(job.finished);
          })
          .catch(function () {
            return false;
          });
      })
    ).then(function (finished) {
      if (finished.some(Boolean)) {
        window.location.reload();
        return;
      }
      delay = Math.min(delay * 1.5, 5000);
      window.setTimeout(poll, delay);
    });
  }
  window.setTimeout(poll, delay);
})();
