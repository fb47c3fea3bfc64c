window.__epErrors = [];
(function () {
  function note(msg) { window.__epErrors.push(String(msg)); var b = document.getElementById('ep-errors');
    if (b) { b.hidden = false; b.textContent = 'JavaScript errors: ' + window.__epErrors.join(' | '); } }
  window.addEventListener('error', function (e) { note((e.message || e) + (e.filename ? ' at ' + e.filename + ':' + e.lineno : '')); });
  window.addEventListener('unhandledrejection', function (e) { note('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)); });
  var ce = console.error; console.error = function () { note(Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); };
})();
