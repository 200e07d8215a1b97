// kern inbox: live rows and counts from /events, keyboard shortcuts, expiry countdowns, a
// run's live status, and the diff of edited arguments. Every page works without it.
(function () {
  "use strict";

  // Set once a form is sent: the page's own reloads then wait for its answer, and a second
  // press of a button sends nothing (the first decision is the one that counts).
  var submitting = false;
  document.addEventListener("submit", function (event) {
    if (submitting) event.preventDefault();
    submitting = true;
  });
  window.addEventListener("pageshow", function (event) { if (event.persisted) submitting = false; });

  var KINDS = ["created", "vote", "approved", "rejected", "edited", "expired", "cancelled", "executed", "failed"];
  var DECIDED = ["approved", "rejected", "expired", "cancelled"];

  // The `a` key approves only when pressed twice: the first press arms the approve button it
  // would press (and says so on it), any other key disarms it, so one stray key never lets a
  // risky call run.
  var armed = null;
  function disarm() {
    if (!armed) return;
    armed.textContent = armed.dataset.label;
    if (armed.dataset.name) armed.setAttribute("aria-label", armed.dataset.name);
    armed.classList.remove("armed");
    armed = null;
  }
  function approveOnSecondPress(button) {
    if (armed === button) {
      disarm();
      button.form.requestSubmit(button);
      return;
    }
    disarm();
    armed = button;
    button.dataset.label = button.textContent;
    button.textContent = "Press a again to approve";
    // What a screen reader says of the button says so too.
    var name = button.getAttribute("aria-label");
    if (name) {
      button.dataset.name = name;
      button.setAttribute("aria-label", "Press a again to " + name.charAt(0).toLowerCase() + name.slice(1));
    }
    button.classList.add("armed");
  }

  function typing(event) {
    var tag = event.target && event.target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.ctrlKey || event.metaKey || event.altKey;
  }

  // Calls back with (kind, event) for each event of the trail after `after`, the last one the
  // page was rendered with.
  function listen(after, onEvent) {
    if (!window.EventSource) return;
    var source = new EventSource("/events" + (after ? "?after=" + encodeURIComponent(after) : ""));
    var live = document.getElementById("live");
    var stopped = document.getElementById("stopped");
    KINDS.forEach(function (kind) {
      source.addEventListener("approval." + kind, function (message) {
        var data;
        try { data = JSON.parse(message.data); } catch (_) { return; }
        onEvent(kind, data);
      });
    });
    source.onopen = function () { if (live) live.hidden = false; };
    source.onerror = function () {
      if (live) live.hidden = true;
      // Closed for good (a session that ended): the page says so rather than going stale.
      if (stopped && source.readyState === EventSource.CLOSED) stopped.hidden = false;
    };
  }

  // Each expiry counts down over the time it was rendered with, which stays as its title. Past
  // it, the approve buttons of its row (or page) are turned off: the server would refuse them.
  function countdowns() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-expires]").forEach(function (node) {
      var left = Math.round((Date.parse(node.dataset.expires) - now) / 1000);
      if (isNaN(left)) return;
      if (!node.title) node.title = node.textContent.replace(/^expires /, "");
      if (left <= 0) {
        node.textContent = "expired";
        node.classList.add("soon");
        var scope = node.closest(".row") || document.getElementById("decide");
        if (scope) scope.querySelectorAll("button.approve").forEach(function (button) { button.disabled = true; });
        return;
      }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      var prefix = node.dataset.prefix === undefined ? "expires in " : node.dataset.prefix;
      node.textContent = prefix + (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
      node.classList.toggle("soon", left < 300);
    });
  }
  countdowns();
  setInterval(countdowns, 1000);

  // The inbox: live rows, j/k/a/r and / keys.
  var list = document.getElementById("list");
  if (list) {
    var selected = -1;
    var timer = null;
    var rows = function () { return Array.prototype.slice.call(document.querySelectorAll("#rows .row")); };
    // `quietly`, as after a refresh: the selection is kept, and the focus left where it is.
    var select = function (index, quietly) {
      var all = rows();
      if (!all.length) { selected = -1; return; }
      selected = Math.max(0, Math.min(index, all.length - 1));
      all.forEach(function (row, i) {
        row.classList.toggle("selected", i === selected);
        if (i === selected) row.setAttribute("aria-current", "true");
        else row.removeAttribute("aria-current");
      });
      // The focus follows a move, so that a screen reader reads the row and the list is not
      // redrawn under it.
      if (!quietly) all[selected].querySelector("a").focus();
    };
    var setCount = function (total) { document.getElementById("count").textContent = total; };
    // Rows are not moved under the admin's pointer or focus: a click meant for one row would
    // land on another. The refresh waits until they leave the list, or ask for it with the
    // button that says it waits.
    var waiting = document.getElementById("refresh");
    var held = function () { return list.matches(":hover") || list.contains(document.activeElement); };
    var resume = function () { if (!waiting.hidden && !held()) refresh(true); };
    list.addEventListener("mouseleave", function () { setTimeout(resume, 0); });
    list.addEventListener("focusout", function () { setTimeout(resume, 0); });
    waiting.addEventListener("click", function () { refresh(true); });
    var refresh = function (now) {
      clearTimeout(timer);
      timer = setTimeout(function () {
        if (!now && held()) { waiting.hidden = false; return; }
        waiting.hidden = true;
        var current = rows()[selected];
        var currentId = current && current.dataset.id;
        fetch("/ui/rows?" + list.dataset.query, { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) {
            if (html === null) return;
            var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("rows");
            if (!fresh) return;
            document.getElementById("rows").replaceWith(document.importNode(fresh, true));
            setCount(fresh.dataset.total);
            if (selected >= 0) {
              var index = rows().findIndex(function (row) { return row.dataset.id === currentId; });
              select(index >= 0 ? index : selected, true);
            }
            countdowns();
          })
          .catch(function () {});
      }, now ? 0 : 150);
    };
    listen(list.dataset.after, function (kind, event) {
      if (DECIDED.indexOf(kind) >= 0) {
        var gone = document.querySelector('#rows .row[data-id="' + CSS.escape(event.approval_id) + '"]');
        if (gone && !gone.classList.contains("leaving")) {
          // Greyed and its buttons off until the list is refreshed, rather than taken out from
          // under the pointer.
          gone.classList.add("leaving");
          gone.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
          var count = document.getElementById("count");
          count.textContent = Math.max(0, (parseInt(count.textContent, 10) || 1) - 1);
        }
      }
      if (kind === "created" || DECIDED.indexOf(kind) >= 0) refresh();
    });
    document.addEventListener("keydown", function (event) {
      if (typing(event)) { if (event.key === "Escape") event.target.blur(); return; }
      if (event.key !== "a") disarm();
      // Enter on a link or button does what that control does, and nothing more.
      if (event.key === "Enter" && event.target.closest && event.target.closest("a, button")) return;
      var row = rows()[selected];
      if (event.key === "j") select(selected + 1);
      else if (event.key === "k") select(selected - 1);
      else if (event.key === "/") { event.preventDefault(); document.getElementById("filter").focus(); }
      else if ((event.key === "Enter" || event.key === "o") && row) row.querySelector("a").click();
      else if (event.key === "a" && row) {
        var quick = row.querySelector("form button.approve:not(:disabled)");
        if (quick) approveOnSecondPress(quick);
        else row.querySelector("a").click();
      } else if (event.key === "r" && row) location.href = row.querySelector("a").getAttribute("href") + "#reject";
    });
  }

  // One row: a and r keys, reload when someone else decides it, the diff of an edit.
  var detail = document.querySelector("[data-approval-id]");
  if (detail) {
    var note = document.getElementById("reject-note");
    if (note && location.hash === "#reject") note.focus();
    var status = document.getElementById("status");
    // Whether the admin has typed or chosen anything on the page, which a reload would lose.
    var dirty = function () {
      return Array.prototype.some.call(detail.querySelectorAll("input:not([type=hidden]), textarea, select"), function (field) {
        if (field.type === "checkbox") return field.checked !== field.defaultChecked;
        if (field.tagName === "SELECT") {
          return Array.prototype.some.call(field.options, function (option) { return option.selected !== option.defaultSelected; });
        }
        return field.value !== field.defaultValue;
      });
    };
    listen(detail.dataset.after, function (kind, event) {
      if (submitting || event.approval_id !== detail.dataset.approvalId || status.textContent !== "pending" ||
          (DECIDED.indexOf(kind) < 0 && kind !== "vote")) return;
      if (dirty()) document.getElementById("changed").hidden = false;
      else location.reload();
    });
    document.addEventListener("keydown", function (event) {
      if (typing(event)) return;
      if (event.key !== "a") disarm();
      var approve = document.getElementById("approve-form");
      if (event.key === "a" && approve) {
        var first = approve.querySelector("input:not([type=hidden]), textarea, select");
        if (approve.querySelector("[aria-required=true]") && first) first.focus();
        else approveOnSecondPress(approve.querySelector("button[value=approve]"));
      } else if (event.key === "r" && note) { event.preventDefault(); note.focus(); }
    });
    var edit = document.getElementById("edit-form");
    var diff = document.getElementById("edit-diff");
    if (edit && diff) {
      edit.addEventListener("input", function () {
        diff.textContent = "";
        edit.querySelectorAll("[name^='arg.']").forEach(function (field) {
          var before = field.type === "checkbox" ? String(field.defaultChecked) : field.defaultValue;
          var after = field.type === "checkbox" ? String(field.checked) : field.value;
          if (field.tagName === "SELECT") {
            var original = Array.prototype.find.call(field.options, function (o) { return o.defaultSelected; });
            before = original ? original.value : "";
          }
          if (before === after) return;
          var line = document.createElement("div");
          var name = document.createElement("code");
          name.textContent = field.name.slice(4) + ": ";
          var del = document.createElement("del");
          del.textContent = before;
          var ins = document.createElement("ins");
          ins.textContent = after;
          line.append(name, del, " → ", ins);
          diff.append(line);
        });
        diff.hidden = !diff.childElementCount;
      });
    }
  }

  // A run: its status, live. Not asked while the tab is hidden, and no more once the session
  // has ended (the answer is 401 then).
  var run = document.querySelector("[data-run-id]");
  if (run && ["paused", "running"].indexOf(run.dataset.status) >= 0) {
    var polling = setInterval(function () {
      if (document.hidden) return;
      fetch("/runs/" + encodeURIComponent(run.dataset.runId), { credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) clearInterval(polling);
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (!submitting && body && String(body.status).toLowerCase() !== run.dataset.status) location.reload();
        })
        .catch(function () {});
    }, 1500);
  }
})();
