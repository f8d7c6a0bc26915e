// blossom-client-sdk against a Blossom server: upload (BUD-06 check, then BUD-02 PUT with a
// BUD-11 token), has, download, ranges, list, delete, and what a browser does (CORS preflight,
// reading a refusal). Usage: node run.mjs http://127.0.0.1:PORT
// Prints one line per check; exits 1 if any failed.
import { Actions, createUploadAuth, createListAuth, createDeleteAuth } from "blossom-client-sdk";
import { generateSecretKey, getPublicKey, finalizeEvent } from "nostr-tools/pure";

const { uploadBlob, hasBlob, downloadBlob, listBlobs, deleteBlob } = Actions;
const server = process.argv[2];
if (!server) {
  console.error("usage: node run.mjs <server url>");
  process.exit(2);
}
const secret = generateSecretKey();
const pubkey = getPublicKey(secret);
const signer = async (draft) => finalizeEvent(draft, secret);

let failed = 0;
function check(name, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok ? "" : ": " + detail}`);
  if (!ok) failed++;
}
async function step(name, f) {
  try {
    await f();
  } catch (e) {
    check(name, false, `threw ${e && e.stack ? e.stack : e}`);
  }
}

const data = new Uint8Array(300_000).map((_, i) => (i * 31 + 7) & 255);
const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
const sha256 = Buffer.from(digest).toString("hex");
const blob = new Blob([data], { type: "application/octet-stream" });

await step("upload", async () => {
  const descriptor = await uploadBlob(server, blob, {
    onAuth: (_server, hash) => createUploadAuth(signer, hash),
  });
  check("upload", descriptor.sha256 === sha256 && descriptor.size === data.length, JSON.stringify(descriptor));
  // BUD-02: the URL carries a file extension, and serves the blob.
  const served = new Uint8Array(await (await fetch(descriptor.url)).arrayBuffer());
  check(
    "upload: the descriptor's url serves the blob",
    descriptor.url.includes("/" + sha256 + ".") && Buffer.from(served).equals(Buffer.from(data)),
    descriptor.url,
  );
});

await step("upload with the server named in the token", async () => {
  const descriptor = await uploadBlob(server, blob, {
    onAuth: (s, hash) => createUploadAuth(signer, hash, { servers: [s] }),
  });
  check("upload with the server named in the token", descriptor.sha256 === sha256, JSON.stringify(descriptor));
});

await step("has", async () => {
  check("has", (await hasBlob(server, sha256)) === true);
  const other = "0".repeat(64);
  check("has: a blob it does not have", (await hasBlob(server, other)) === false);
});

await step("download", async () => {
  const res = await downloadBlob(server, sha256);
  const got = new Uint8Array(await res.arrayBuffer());
  check("download", res.status === 200 && got.length === data.length && got.every((b, i) => b === data[i]), `status ${res.status}, ${got.length} bytes`);
});

await step("range", async () => {
  const res = await fetch(new URL("/" + sha256, server), { headers: { Range: "bytes=1000-1999" } });
  const got = new Uint8Array(await res.arrayBuffer());
  check(
    "range",
    res.status === 206 && res.headers.get("content-range") === `bytes 1000-1999/${data.length}` && got.length === 1000 && got.every((b, i) => b === data[1000 + i]),
    `status ${res.status}, content-range ${res.headers.get("content-range")}, ${got.length} bytes`,
  );
  const tail = await fetch(new URL("/" + sha256 + ".bin", server), { headers: { Range: "bytes=-10" } });
  const last = new Uint8Array(await tail.arrayBuffer());
  check("range: a suffix, by a name with an extension", tail.status === 206 && last.length === 10 && last[9] === data[data.length - 1], `status ${tail.status}`);
  const past = await fetch(new URL("/" + sha256, server), { headers: { Range: `bytes=${data.length + 10}-` } });
  await past.arrayBuffer();
  check("range: unsatisfiable", past.status === 416 && past.headers.get("content-range") === `bytes */${data.length}`, `status ${past.status}, content-range ${past.headers.get("content-range")}`);
});

await step("list", async () => {
  const list = await listBlobs(server, pubkey, { onAuth: () => createListAuth(signer) });
  check("list", Array.isArray(list) && list.some((d) => d.sha256 === sha256 && d.size === data.length), JSON.stringify(list));
});

await step("a browser's preflight", async () => {
  const res = await fetch(new URL("/upload", server), {
    method: "OPTIONS",
    headers: { Origin: "https://app.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization" },
  });
  const methods = res.headers.get("access-control-allow-methods") || "";
  check("a browser's preflight", res.ok && res.headers.get("access-control-allow-origin") === "*" && methods.includes("PUT"), `status ${res.status}, methods ${methods}`);
});

await step("a refused upload's answer is read", async () => {
  const res = await fetch(new URL("/upload", server), { method: "PUT", body: new Uint8Array(4 << 20) });
  const reason = res.headers.get("x-reason");
  await res.arrayBuffer();
  check("a refused upload's answer is read", res.status === 401 && !!reason, `status ${res.status}, reason ${reason}`);
});

await step("delete", async () => {
  const deleted = await deleteBlob(server, sha256, { onAuth: (_server, hash) => createDeleteAuth(signer, hash) });
  check("delete", deleted === true);
  check("delete: gone", (await hasBlob(server, sha256)) === false);
});

console.log(failed === 0 ? "all checks passed" : `${failed} checks failed`);
process.exit(failed === 0 ? 0 : 1);
