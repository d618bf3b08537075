// The web inbox: the list (live over server-sent events), search, one message.
// No framework, no build step: everything here is served by mailio-trio itself.
// Client text is only ever put into the page with textContent, never innerHTML;
// the HTML part is shown in <iframe sandbox=""> from /html, under its own CSP.
"use strict";

const $ = (id) => document.getElementById(id);
const api = "/api/v1";
let selected = null;
let query = "";

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function who(address) {
  if (!address) return "";
  return address.Name ? `${address.Name} <${address.Address}>` : address.Address;
}

function when(created) {
  return new Date(created).toLocaleString();
}

function row(message) {
  const li = el("li", { id: `m-${message.ID}` });
  li.dataset.id = message.ID;
  if (!message.Read) li.classList.add("unread");
  if (message.ID === selected) li.classList.add("selected");
  li.append(
    el("span", { className: "when", textContent: when(message.Created) }),
    el("div", { className: "from", textContent: who(message.From) }),
    el("div", { className: "subject", textContent: message.Subject || "(no subject)" }),
    el("div", { className: "snippet", textContent: message.Snippet }),
  );
  li.addEventListener("click", () => show(message.ID));
  return li;
}

async function load() {
  const url = query
    ? `${api}/search?query=${encodeURIComponent(query)}&limit=200`
    : `${api}/messages?limit=200`;
  const listing = await (await fetch(url)).json();
  $("messages").replaceChildren(...listing.messages.map(row));
  $("counts").textContent = query
    ? `${listing.messages_count} of ${listing.total} messages match`
    : `${listing.total} messages, ${listing.unread} unread`;
}

function dl(target, pairs) {
  target.replaceChildren();
  for (const [name, value] of pairs) {
    target.append(el("dt", { textContent: name }), el("dd", { textContent: value ?? "" }));
  }
}

function tab(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const pane of document.querySelectorAll(".tab")) {
    pane.classList.toggle("active", pane.id === `tab-${name}`);
  }
}

function frame(id) {
  const remote = $("remote-images").checked ? "?remote=1" : "";
  $("html-frame").src = `${api}/message/${encodeURIComponent(id)}/html${remote}`;
}

async function show(id) {
  const response = await fetch(`${api}/message/${encodeURIComponent(id)}`);
  if (!response.ok) return;
  const m = await response.json();
  selected = id;
  for (const li of document.querySelectorAll("#messages li")) {
    li.classList.toggle("selected", li.dataset.id === id);
    if (li.dataset.id === id) li.classList.remove("unread");
  }
  $("message-pane").hidden = false;
  $("placeholder").hidden = true;
  $("m-subject").textContent = m.Subject || "(no subject)";
  dl($("m-meta"), [
    ["From", who(m.From)],
    ["To", m.To.map(who).join(", ")],
    ...(m.Cc.length ? [["Cc", m.Cc.map(who).join(", ")]] : []),
    ["Date", m.Date],
    ["Size", `${m.Size} octets`],
  ]);
  dl($("tab-session"), [
    ["Envelope from", m.Envelope.From === null ? "<>" : m.Envelope.From],
    ["Envelope to", m.Envelope.To.join(", ")],
    ["Client", m.Session.ClientAddress],
    ["HELO", m.Session.Helo],
    ["TLS", m.Session.TLS ? "yes" : "no"],
    ["AUTH user", m.Session.AuthUser ?? "(none)"],
    ["Authentication-Results", m.Session.AuthenticationResults ?? "(not checked)"],
    ["Received", m.Created],
  ]);
  $("tab-text").textContent = m.Text;
  const headers = await (await fetch(`${api}/message/${encodeURIComponent(id)}/headers`)).json();
  $("tab-headers").replaceChildren(
    ...Object.entries(headers).flatMap(([name, values]) =>
      values.map((value) => el("tr", {}, el("td", { textContent: name }), el("td", { textContent: value }))),
    ),
  );
  $("tab-raw").textContent = await (await fetch(`${api}/message/${encodeURIComponent(id)}/raw`)).text();
  $("attachments").replaceChildren(
    ...m.Attachments.map((a) =>
      el(
        "li",
        {},
        el("a", {
          href: `${api}/message/${encodeURIComponent(id)}/part/${encodeURIComponent(a.PartID)}`,
          download: a.FileName || `part-${a.PartID}`,
          textContent: `${a.FileName || a.PartID} (${a.ContentType}, ${a.Size} octets)`,
        }),
      ),
    ),
  );
  if (m.HTML) {
    frame(id);
    tab("html");
  } else {
    $("html-frame").removeAttribute("src");
    tab("text");
  }
  load();  // the unread count: viewing marked it read
}

async function remove(ids) {
  await fetch(`${api}/messages`, {
    method: "DELETE",
    headers: { "Content-Type": "application/json" },
    body: ids === null ? "" : JSON.stringify({ IDs: ids }),
  });
}

function closeMessage() {
  selected = null;
  $("message-pane").hidden = true;
  $("placeholder").hidden = false;
  $("html-frame").removeAttribute("src");
}

function listen() {
  const events = new EventSource(`${api}/events`);
  events.addEventListener("open", () => {
    $("status").textContent = "live";
    load();  // whatever happened while we were not connected
  });
  events.addEventListener("error", () => {
    $("status").textContent = "reconnecting…";
  });
  events.addEventListener("new", (event) => {
    const message = JSON.parse(event.data);
    if (query) {
      load();
      return;
    }
    $("messages").prepend(row(message));
    load();  // counts, and the cap may have dropped the oldest
  });
  events.addEventListener("delete", (event) => {
    const ids = JSON.parse(event.data).IDs;
    if (ids === null || ids.includes(selected)) closeMessage();
    load();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => tab(button.dataset.tab));
  }
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    query = $("search").value.trim();
    load();
  });
  $("search").addEventListener("search", () => {
    query = $("search").value.trim();
    load();
  });
  $("remote-images").addEventListener("change", () => selected && frame(selected));
  $("delete-one").addEventListener("click", async () => {
    if (selected) await remove([selected]);
  });
  // Mailpit's release: the server sends the stored message on to `serve --release-to`.
  $("release-one").addEventListener("click", async () => {
    if (!selected) return;
    const to = prompt("Release to (addresses, comma-separated):");
    if (!to) return;
    const response = await fetch(`/api/v1/message/${encodeURIComponent(selected)}/release`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ To: to.split(",").map((a) => a.trim()).filter(Boolean) }),
    });
    alert(response.ok ? "Released." : `Not released: ${await response.text()}`);
  });
  $("delete-all").addEventListener("click", async () => {
    if (confirm("Delete every message?")) await remove(null);
  });
  load();
  listen();
});
