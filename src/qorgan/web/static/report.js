// The public report form's proof of work (qorgan/web/proof_of_work.py): fetch a signed
// challenge from /report/challenge, find a number n such that SHA-256("<token>:<n>") starts
// with `difficulty` zero bits, and send both with the form. Solving starts when the page
// opens, so the form usually goes at once; a challenge close to expiry is replaced.
// SHA-256 comes from WebCrypto (crypto.subtle); pages served over plain HTTP (no secure
// context, no crypto.subtle) use the small implementation below. No library, no third party.
(function () {
  "use strict";

  var form = document.getElementById("report-form");
  if (!form) return;
  var progress = document.getElementById("report-progress");
  var button = form.querySelector("button[type=submit]");
  var encoder = new TextEncoder();
  var BATCH = 256;
  var MARGIN_SECONDS = 60;
  var pending = null; // a Promise of {token, solution, expires}

  function zeroBits(bytes) {
    var count = 0;
    for (var i = 0; i < bytes.length; i++) {
      var b = bytes[i];
      if (b === 0) { count += 8; continue; }
      while ((b & 0x80) === 0) { count++; b <<= 1; }
      return count;
    }
    return count;
  }

  // SHA-256 (FIPS 180-4) of a byte array, for pages without crypto.subtle.
  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  function sha256(data) {
    var length = data.length;
    var padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
    padded.set(data);
    padded[length] = 0x80;
    var view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
    view.setUint32(padded.length - 4, (length << 3) >>> 0);
    var h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    ]);
    var w = new Uint32Array(64);
    for (var offset = 0; offset < padded.length; offset += 64) {
      for (var t = 0; t < 16; t++) w[t] = view.getUint32(offset + 4 * t);
      for (t = 16; t < 64; t++) {
        var x = w[t - 15], y = w[t - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (t = 0; t < 64; t++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var ch = (e & f) ^ (~e & g);
        var t1 = (k + S1 + ch + K[t] + w[t]) >>> 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var maj = (a & b) ^ (a & c) ^ (b & c);
        var t2 = (S0 + maj) >>> 0;
        k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }
    var out = new Uint8Array(32);
    var outView = new DataView(out.buffer);
    for (var i = 0; i < 8; i++) outView.setUint32(4 * i, h[i]);
    return out;
  }

  var subtle = window.crypto && window.crypto.subtle;

  async function solve(token, difficulty) {
    var prefix = token + ":";
    for (var start = 0; ; start += BATCH) {
      if (subtle) {
        var jobs = [];
        for (var n = start; n < start + BATCH; n++) {
          jobs.push(subtle.digest("SHA-256", encoder.encode(prefix + n)));
        }
        var digests = await Promise.all(jobs);
        for (var i = 0; i < digests.length; i++) {
          if (zeroBits(new Uint8Array(digests[i])) >= difficulty) return String(start + i);
        }
      } else {
        for (var m = start; m < start + BATCH; m++) {
          if (zeroBits(sha256(encoder.encode(prefix + m))) >= difficulty) return String(m);
        }
        await new Promise(function (resolve) { setTimeout(resolve, 0); }); // let the page breathe
      }
    }
  }

  async function fresh() {
    var response = await fetch("/report/challenge", {credentials: "same-origin", cache: "no-store"});
    if (!response.ok) throw new Error("challenge " + response.status);
    var challenge = await response.json();
    var solution = await solve(challenge.token, challenge.difficulty);
    return {token: challenge.token, solution: solution, expires: challenge.expires};
  }

  function start() {
    pending = fresh();
    pending.catch(function () {}); // reported when the form is sent
    return pending;
  }

  function say(text, isError) {
    progress.textContent = text;
    progress.className = isError ? "error" : "message";
    progress.hidden = !text;
  }

  function filesProblem() {
    var input = form.querySelector("input[type=file]");
    if (!input || !input.files) return null;
    if (input.files.length > Number(input.dataset.maxFiles)) return progress.dataset.tooManyFiles;
    for (var i = 0; i < input.files.length; i++) {
      if (input.files[i].size > Number(input.dataset.maxBytes)) return progress.dataset.tooLarge;
    }
    return null;
  }

  form.addEventListener("submit", async function (event) {
    if (form.dataset.solved === "yes") return; // the second, real submit
    event.preventDefault();
    var problem = filesProblem();
    if (problem) { say(problem, true); return; }
    button.disabled = true;
    say(progress.dataset.working, false);
    try {
      var found = await pending;
      if (found.expires - Date.now() / 1000 < MARGIN_SECONDS) found = await start();
      form.elements.pow_token.value = found.token;
      form.elements.pow_solution.value = found.solution;
      form.dataset.solved = "yes";
      form.submit();
    } catch (error) {
      button.disabled = false;
      say(progress.dataset.failed, true);
      start();
    }
  });

  start();
})();
