// agigit web explorer: keyboard navigation on lists, file downloads over a WebSocket.
'use strict';

// j / ArrowDown and k / ArrowUp move through the rows of a list ([data-nav]); Enter opens the
// row's link (it has the focus); "/" goes to the search box.
function rows() {
  const table = document.querySelector('[data-nav]');
  return table ? Array.from(table.querySelectorAll('[data-nav-row]')) : [];
}

function select(all, i) {
  all.forEach((r) => r.classList.remove('selected'));
  const row = all[Math.max(0, Math.min(i, all.length - 1))];
  if (!row) return;
  row.classList.add('selected');
  const link = row.querySelector('.row-link');
  if (link) link.focus({ preventScroll: false });
  row.scrollIntoView({ block: 'nearest' });
}

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT');
  if (e.key === '/' && !typing) {
    const search = document.querySelector('form.search input');
    if (search) { e.preventDefault(); search.focus(); }
    return;
  }
  if (typing) return;
  const all = rows();
  if (all.length === 0) return;
  const at = all.findIndex((r) => r.classList.contains('selected') || r.contains(document.activeElement));
  if (e.key === 'j' || e.key === 'ArrowDown') { e.preventDefault(); select(all, at < 0 ? 0 : at + 1); }
  else if (e.key === 'k' || e.key === 'ArrowUp') { e.preventDefault(); select(all, at < 0 ? 0 : at - 1); }
  else if (e.key === 'Enter' && at >= 0 && !(t && t.closest && t.closest('[data-nav-row]'))) {
    const link = all[at].querySelector('.row-link');
    if (link) { e.preventDefault(); link.click(); }
  }
});

function hex(buffer) {
  return Array.from(new Uint8Array(buffer)).map((b) => b.toString(16).padStart(2, '0')).join('');
}

// A download: the server streams the file's frames, sends "verified" with its SHA-256 before
// the last frame, then "done". The page checks the size and the digest itself before saving.
function download(button) {
  const box = document.getElementById('transfer');
  const bar = document.getElementById('transfer-progress');
  const status = document.getElementById('transfer-status');
  const name = button.dataset.name || 'file';
  // The size the page knows, until the server's start message says it (a tensor's file).
  let expected = Number(button.dataset.size || 0);
  box.hidden = false;
  bar.max = Math.max(expected, 1);
  bar.value = 0;
  status.className = '';
  status.textContent = 'Connecting…';
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(scheme + '//' + location.host + button.dataset.url);
  socket.binaryType = 'arraybuffer';
  const parts = [];
  let received = 0;
  let verified = null;
  let finished = false;
  const fail = (why) => {
    finished = true;
    status.className = 'bad';
    status.textContent = 'Failed: ' + why + ' — nothing was saved.';
    box.dataset.state = 'failed';
  };
  socket.onmessage = async (event) => {
    if (typeof event.data !== 'string') {
      parts.push(event.data);
      received += event.data.byteLength;
      bar.value = received;
      status.textContent = received + ' of ' + expected + ' bytes';
      return;
    }
    const msg = JSON.parse(event.data);
    if (msg.type === 'start') {
      expected = Number(msg.size);
      bar.max = Math.max(expected, 1);
      status.textContent = 'Receiving ' + msg.path + '…';
    } else if (msg.type === 'verified') {
      verified = msg;
    } else if (msg.type === 'error') {
      fail(msg.message);
      socket.close();
    } else if (msg.type === 'done') {
      finished = true;
      socket.close();
      const blob = new Blob(parts, { type: 'application/octet-stream' });
      if (!verified || blob.size !== verified.bytes || blob.size !== expected) {
        fail('the size does not match');
        return;
      }
      // Web Crypto exists only in secure contexts (https, localhost): elsewhere the server's
      // check is the one there is.
      let mine = null;
      if (window.crypto && crypto.subtle) {
        mine = hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
        if (mine !== verified.sha256) {
          fail('the SHA-256 does not match');
          return;
        }
      }
      status.className = 'ok';
      status.textContent = mine
        ? 'Verified by the server and here: ' + blob.size + ' bytes, SHA-256 ' + mine
        : 'Verified by the server: ' + blob.size + ' bytes, SHA-256 ' + verified.sha256;
      box.dataset.state = 'verified';
      box.dataset.sha256 = verified.sha256;
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.appendChild(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 60000);
    }
  };
  socket.onerror = () => { if (!finished) fail('the connection failed'); };
  socket.onclose = () => { if (!finished) fail('the connection closed early'); };
}

document.addEventListener('click', (e) => {
  const button = e.target.closest && e.target.closest('button.download');
  if (button) { e.preventDefault(); download(button); }
});

// Fetching a repository from the relays takes as long as its download: say so, and once.
document.querySelectorAll('form.fetch').forEach((form) => {
  form.addEventListener('submit', () => {
    const button = form.querySelector('button');
    if (button) { button.disabled = true; button.textContent = 'Fetching…'; }
  });
});
