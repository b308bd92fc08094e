// mlwarden console: verify a ledger entry's inclusion proof in the browser (WebCrypto SHA-256 and Ed25519).
// RFC 9162 section 2.1: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right); the root is
// compared with the one in the C2SP checkpoint, whose Ed25519 signature is checked with the workspace's key.
"use strict";
(function () {
  const enc = new TextEncoder();

  function concat() {
    let length = 0;
    for (const part of arguments) length += part.length;
    const out = new Uint8Array(length);
    let at = 0;
    for (const part of arguments) { out.set(part, at); at += part.length; }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  function hex(bytes) {
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function fromHex(text) {
    if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not hex: " + text.slice(0, 16));
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  }

  function fromBase64(text) {
    const raw = atob(text);
    return Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
  }

  function same(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  // RFC 9162 2.1.3.2: the root a leaf's audit path leads to.
  async function rootFromPath(leaf, index, size, path) {
    if (index >= size) throw new Error("index " + index + " is not below the tree size " + size);
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (sn === 0) throw new Error("the audit path is longer than the tree allows");
      if ((fn & 1) === 1 || fn === sn) {
        r = await sha256(concat([1], p, r));
        if ((fn & 1) === 0) {
          while ((fn & 1) === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await sha256(concat([1], r, p));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("the audit path is shorter than the tree needs");
    return r;
  }

  // A signed-note verifier key: name+hexkeyid+base64(0x01 || 32-byte Ed25519 key).
  async function parseVkey(vkey) {
    // name+keyid+key: the key is base64, which may itself hold "+" (split at the first two only)
    const first = vkey.indexOf("+");
    const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
    if (second < 0) throw new Error("the verifier key must read name+keyid+key");
    const parts = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
    const raw = fromBase64(parts[2]);
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("the verifier key is not an Ed25519 key");
    const publicKey = raw.slice(1);
    const id = (await sha256(concat(enc.encode(parts[0] + "\n"), [1], publicKey))).slice(0, 4);
    if (hex(id) !== parts[1]) throw new Error("the verifier key id does not match its name and key");
    return { name: parts[0], id: id, publicKey: publicKey };
  }

  async function openNote(note, key) {
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint has no signature block");
    const text = note.slice(0, split + 1);
    const lines = note.slice(split + 2).split("\n").filter(function (l) { return l.length > 0; });
    const cryptoKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
    for (const line of lines) {
      const match = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!match || match[1] !== key.name) continue;
      const raw = fromBase64(match[2]);
      if (raw.length !== 68 || !same(raw.slice(0, 4), key.id)) continue;
      if (await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, raw.slice(4), enc.encode(text))) return text;
      throw new Error("the checkpoint's Ed25519 signature does not verify");
    }
    throw new Error("the checkpoint carries no signature by the workspace key " + key.name);
  }

  async function verify(proof, step) {
    const key = await parseVkey(proof.vkey);
    step("verifier key " + key.name + " (key id " + hex(key.id) + ") parsed");
    const text = await openNote(proof.note, key);
    step("checkpoint signature verified with Ed25519");
    const lines = text.split("\n");
    if (lines[0] !== key.name) throw new Error("the checkpoint's origin is not the key's name");
    const size = Number(lines[1]);
    const signedRoot = fromBase64(lines[2]);
    if (size !== proof.tree_size) throw new Error("the checkpoint is of size " + size + ", the proof of " + proof.tree_size);
    const leaf = await sha256(concat([0], enc.encode(proof.entry)));
    step("leaf hash of entry " + proof.index + ": " + hex(leaf).slice(0, 16) + "…");
    const path = proof.path.map(fromHex);
    const root = await rootFromPath(leaf, proof.index, proof.tree_size, path);
    step("root from the " + path.length + "-hash audit path: " + hex(root).slice(0, 16) + "…");
    if (!same(root, signedRoot)) throw new Error("the computed root is not the signed root " + hex(signedRoot).slice(0, 16) + "…");
    return size;
  }

  async function run() {
    const source = document.getElementById("proof-data");
    const status = document.getElementById("proof-status");
    const steps = document.getElementById("proof-steps");
    if (!source || !status) return;
    function step(message) {
      const li = document.createElement("li");
      li.textContent = message;
      steps.appendChild(li);
    }
    try {
      const proof = JSON.parse(source.textContent);
      const size = await verify(proof, step);
      status.dataset.state = "verified";
      status.textContent = "Verified in your browser: entry " + proof.index + " is in the ledger of " + size +
        " entries whose signed checkpoint verifies with the workspace's key.";
    } catch (error) {
      status.dataset.state = "failed";
      status.textContent = "NOT verified: " + (error && error.message ? error.message : String(error));
    }
  }

  document.addEventListener("DOMContentLoaded", run);
})();
