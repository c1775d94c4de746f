// Account opening: a form is sent once (double clicks do not send it twice), and the progress page follows
// the opening through its JSON endpoint until it is finished.
(function () {
  "use strict";

  document.querySelectorAll("form[data-once-only]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent === "1") {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
    });
  });

  var box = document.querySelector("[data-opening-status]");
  if (!box) {
    return;
  }
  var url = box.getAttribute("data-opening-status");
  var progress = box.querySelector("[data-opening-progress]");
  var message = box.querySelector("[data-opening-message]");
  var ready = box.querySelector("[data-opening-ready]");
  var login = box.querySelector("[data-opening-login]");
  var delay = 1000;

  function show(data) {
    progress.value = data.progress;
    progress.textContent = data.progress + "%";
    if (data.message && message.textContent !== data.message) {
      message.textContent = data.message;
    }
    if (data.account) {
      login.textContent = String(data.account.login);
      ready.hidden = false;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (data) {
        show(data);
        if (data.needs_password && !box.querySelector("form")) {
          window.location.reload();
          return;
        }
        if (!data.finished) {
          delay = 1000;
          window.setTimeout(poll, delay);
        }
      })
      .catch(function () {
        delay = Math.min(delay * 2, 15000);
        window.setTimeout(poll, delay);
      });
  }

  if (!ready.hidden || box.querySelector("form")) {
    return;
  }
  window.setTimeout(poll, 500);
})();
