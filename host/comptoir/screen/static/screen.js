// The counter screen (docs/screen.md): follows /ecran/flux, acts through /ecran/*.
// No framework, no build step; every text from the daemon goes in with textContent.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const state = { counters: {}, order: [], selected: null, tx: null, pending: null,
                  escArmed: 0, catalogue: [], dispensing: false, live: false };

  const VERDICT = { accepted: "Accepté", choose_beneficiary: "Choisir le bénéficiaire",
                    refused: "Refusé", error: "Erreur", tap_failed: "Lecture interrompue" };
  const REASON = {
    replayed: "QR code déjà utilisé", credential_expired: "carte Vitale expirée",
    credential_revoked: "téléphone désactivé (opposition)", credential_suspended: "carte suspendue",
    activation_superseded: "appli activée sur un autre téléphone", presentation_too_old: "QR code trop ancien",
    clock_skew: "heure du téléphone incorrecte", issuer_unknown: "émetteur inconnu",
    credential_signature_invalid: "signature invalide", presentation_signature_invalid: "signature invalide",
    trust_list_expired: "liste de confiance périmée", status_list_stale: "liste d'opposition périmée",
    status_list_unavailable: "liste d'opposition indisponible", challenge_expired: "défi NFC expiré",
    storage_full: "disque plein : présentez la carte à nouveau plus tard", internal_error: "erreur interne",
    state_unavailable: "base partagée injoignable : présentez la carte à nouveau plus tard"
  };
  const LINK = { up: "En ligne", down: "Hors ligne", absent: "Débranché", refused: "Refusé (appairage)" };
  const RIGHTS = { fresh: "Droits à jour", stale_ok: "Droits anciens, acceptés", stale_refused: "Droits trop anciens",
                   expired: "Droits expirés", unknown: "Droits inconnus", blocked: "Bloqué (opposition)" };
  const SOURCE = { credential: "carte", service: "ADRi" };
  const TXSTATE = { awaiting_beneficiary: "choix du bénéficiaire", ready: "prête à dispenser",
                    dispensed: "dispensée", cancelled: "annulée" };
  const QUALITY = { 0: "Assuré(e)", 2: "Ayant droit — conjoint(e)", 6: "Ayant droit — enfant", 9: "Ayant droit" };
  const TP = { 0: "sans tiers payant", 5: "tiers payant AMO", 15: "tiers payant AMO + AMC", 25: "tiers payant AMC" };
  const euros = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR" });
  const eur = (c) => euros.format(c / 100);
  const frDate = (iso) => iso ? new Date(iso).toLocaleString("fr-FR", { dateStyle: "short", timeStyle: "short" }) : "";
  const birth = (s) => s && s.length === 10 ? s.slice(8) + "/" + s.slice(5, 7) + "/" + s.slice(0, 4) : (s || "");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  async function call(method, path, body) {
    const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method === "POST") {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-CSRF-Token"] = csrf;
      opts.body = JSON.stringify(body || {});
    }
    const r = await fetch(path, opts);
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (r.status === 401) sessionLost();
    return { status: r.status, data };
  }

  function say(text, info) {
    const m = $("message");
    m.textContent = text || "";
    m.className = info ? "info" : "";
  }

  function sessionLost() {
    $("connection").textContent = "Session expirée : relancez « comptoir screen »";
    $("connection").className = "pill lost";
    document.body.dataset.session = "expired";
  }

  // --- counters --------------------------------------------------------------------------
  function counterName(port) {
    const i = state.order.indexOf(port);
    return "Comptoir " + (i + 1);
  }

  function renderCounters() {
    const ul = $("counters");
    ul.replaceChildren();
    for (const port of state.order) {
      const c = state.counters[port];
      const li = el("li");
      const b = el("button", "counter");
      b.type = "button";
      b.dataset.port = port;
      b.setAttribute("aria-current", String(port === state.selected));
      b.append(el("span", "name", counterName(port)));
      b.append(el("span", "link " + c.link, LINK[c.link] || c.link));
      const p = c.presentation;
      const failed = tapFailedLast(c);
      const done = c.transaction && (c.tx_state === "dispensed" || c.tx_state === "cancelled");
      b.append(el("span", "last", failed ? VERDICT.tap_failed
        : done ? (c.tx_state === "dispensed" ? "Dispensée" : "Annulée")
        : c.transaction && c.tx_state === "ready" ? "Prête à dispenser"
        : p ? (VERDICT[p.verdict] || p.verdict) + " · " + (p.channel === "qr" ? "QR" : "NFC") : "—"));
      b.addEventListener("click", () => select(port, true));
      li.append(b);
      ul.append(li);
    }
  }

  // A read that broke off after the last verdict (the phone moved away too soon).
  function tapFailedLast(c) {
    return !!(c.tap_failed && (!c.presentation || c.tap_failed.at_ms > c.presentation.at_ms));
  }

  function upsert(c) {
    if (!(c.port in state.counters)) {
      state.order.push(c.port);
      state.order.sort();
    }
    state.counters[c.port] = c;
  }

  function select(port, load) {
    state.selected = port;
    renderCounters();
    renderVerdict();
    const c = state.counters[port];
    if (load && c && c.transaction) loadTx(c.transaction); else if (load) showTx(null);
  }

  function renderVerdict() {
    const v = $("verdict");
    const c = state.counters[state.selected];
    const p = c && c.presentation;
    if (c && c.link !== "up") {
      v.className = "verdict refused";
      v.textContent = counterName(c.port) + " : lecteur " + (LINK[c.link] || c.link).toLowerCase();
      v.dataset.verdict = "link_" + c.link;
      return;
    }
    if (tapFailedLast(c) && !c.transaction) {
      v.className = "verdict tap_failed";
      v.dataset.verdict = "tap_failed";
      v.textContent = "Lecture interrompue — reposez le téléphone sur le lecteur";
      return;
    }
    if (!p) {
      v.className = "verdict idle";
      v.textContent = "En attente d'une carte Vitale (QR ou NFC)";
      v.dataset.verdict = "idle";
      return;
    }
    let text = VERDICT[p.verdict] || p.verdict;
    if ((p.verdict === "refused" || p.verdict === "error") && p.reason)
      text += " : " + (REASON[p.reason] || p.reason.replace(/_/g, " "));
    let cls = p.verdict;
    const tx = state.tx && c.transaction === state.tx.id ? state.tx : null;
    if (tx && (tx.state === "dispensed" || tx.state === "cancelled")) {
      cls = tx.state;
      text = tx.state === "dispensed" ? "Dispensée — feuille de soins faite" : "Transaction annulée";
    } else if (tx && tx.state === "ready" && tx.chosen !== null && tx.people[tx.chosen]) {
      const who = tx.people[tx.chosen];
      cls = "ready";
      text = "Dispensation pour " + who.family_name + " " + who.given_names;
    }
    v.className = "verdict " + cls;
    v.dataset.verdict = cls;
    v.textContent = text;
  }

  // --- the transaction -------------------------------------------------------------------
  async function loadTx(id) {
    const r = await call("GET", "/ecran/transactions/" + id);
    if (r.status !== 200) { say(r.data.message || "Transaction illisible (" + r.status + ")"); return; }
    const c = state.counters[state.selected];
    if (!c || c.transaction !== id) return;  // the counter moved on meanwhile
    showTx(r.data);
  }

  function showTx(tx) {
    const changed = !state.tx || !tx || state.tx.id !== tx.id;
    const stateChanged = changed || state.tx.state !== (tx && tx.state);
    state.tx = tx;
    if (changed) say("");
    if (changed || !tx || tx.state !== "awaiting_beneficiary") state.pending = null;
    renderVerdict();
    renderPeople();
    renderForm(changed, stateChanged);
    renderSheet();
    if (tx && stateChanged && (tx.state === "dispensed" || tx.state === "cancelled")) window.scrollTo(0, 0);
  }

  function renderPeople() {
    const ol = $("people");
    ol.replaceChildren();
    const tx = state.tx;
    $("txinfo").textContent = tx ? "Transaction " + tx.id.slice(0, 8) + " · " + (TXSTATE[tx.state] || tx.state)
      + " · " + (tx.presentation.channel === "qr" ? "QR code" : "NFC") + " · " + frDate(tx.created_at_iso) : "";
    $("coverage").replaceChildren();
    $("hint").textContent = "";
    if (!tx) return;
    tx.people.forEach((p, i) => {
      const li = el("li", "person");
      li.tabIndex = -1;
      li.dataset.person = String(p.person);
      if (state.pending === p.person) li.classList.add("pending");
      if (tx.chosen !== null) li.classList.add(tx.chosen === p.person ? "chosen" : "not-chosen");
      li.append(el("span", "key", String(i + 1)));
      li.append(el("span", "who", p.family_name + " " + p.given_names));
      const r = p.rights || (tx.care_sheet && tx.chosen === p.person ? tx.care_sheet.rights : null);
      const rights = el("span", "rights " + (r ? r.status : "none"));
      rights.dataset.status = r ? r.status : "";
      if (r) {
        rights.append(el("span", null, RIGHTS[r.status] || r.status));
        if (r.source || r.as_of_iso) {
          rights.append(el("br"));
          rights.append(el("small", null, (SOURCE[r.source] || r.source || "") + (r.as_of_iso ? " du " + frDate(r.as_of_iso) : "")));
        }
      } else rights.textContent = "Droits non vérifiés";
      li.append(rights);
      const role = p.person === 0 ? QUALITY[0] : (QUALITY[p.quality] || "Ayant droit");
      li.append(el("span", "meta", role + " · né(e) le " + birth(p.birth_date) + " · NIR " + p.nir_masked));
      li.addEventListener("click", () => { if (tx.state === "awaiting_beneficiary") pick(p.person); });
      ol.append(li);
    });
    if (tx.state === "awaiting_beneficiary")
      $("hint").textContent = state.pending === null
        ? "Tapez le numéro de la personne (1–" + tx.people.length + "), puis Entrée. Échap : annuler."
        : "Entrée : confirmer " + (state.pending + 1) + ". Échap : revenir.";
    const cov = $("coverage");
    if (tx.amo) cov.append(el("div", null, "AMO : régime " + tx.amo.regime + ", caisse " + tx.amo.caisse + ", centre " + tx.amo.centre));
    cov.append(el("div", null, tx.amc
      ? "AMC : n° " + tx.amc.number + ", contrat " + tx.amc.contract_type + " (" + (TP[tx.amc.tiers_payant] || tx.amc.tiers_payant) + "), jusqu'au " + birth(tx.amc.end)
      : "AMC : aucune complémentaire sur la carte"));
  }

  function addLine(code, qty) {
    const div = el("div", "line");
    const c = el("input", "code");
    c.setAttribute("list", "catalogue");
    c.setAttribute("aria-label", "Code CIP13");
    c.placeholder = "CIP13";
    c.inputMode = "numeric";
    c.maxLength = 13;
    c.value = code || "";
    const q = el("input", "qty");
    q.type = "number"; q.min = "1"; q.max = "99"; q.value = String(qty || 1);
    q.setAttribute("aria-label", "Quantité");
    const label = el("span", "label");
    c.addEventListener("input", () => {
      const p = state.catalogue.find((x) => x.cip13 === c.value.trim());
      label.textContent = p ? p.label + " — " + eur(p.unit_price) : "";
    });
    div.append(c, q, label);
    $("lines").append(div);
    return c;
  }

  function renderForm(changed, stateChanged) {
    const f = $("dispense");
    const tx = state.tx;
    const show = !!tx && tx.state === "ready" && state.dispensing;
    f.hidden = !show;
    if (show && stateChanged) {
      $("lines").replaceChildren();
      const first = addLine();
      const chosen = tx.people[tx.chosen];
      const billable = chosen && (!chosen.rights || chosen.rights.billable);
      $("tp-amo").checked = !!billable;
      $("tp-amc").checked = !!(billable && tx.amc && (tx.amc.tiers_payant === 15 || tx.amc.tiers_payant === 25));
      first.focus();
    }
    if (!show && tx && tx.state === "awaiting_beneficiary" && stateChanged) {
      const li = $("people").querySelector("li");
      if (li) li.focus();
    }
  }

  function renderSheet() {
    const s = $("sheet");
    const tx = state.tx;
    s.replaceChildren();
    s.hidden = !(tx && tx.care_sheet);
    if (s.hidden) return;
    const cs = tx.care_sheet;
    s.append(el("h2", null, "Feuille de soins"));
    s.append(el("p", "invoice", "Facture n° " + cs.invoice_no + " · FINESS " + cs.finess + " · " + (cs.lot === null ? "lot en cours" : "lot " + cs.lot)));
    const t = el("table");
    for (const [label, v, key] of [["Total", cs.total, "total"], ["Part AMO", cs.amo, "amo"], ["Part AMC", cs.amc, "amc"],
                                   ["Part patient", cs.patient, "patient"], ["À payer au comptoir", cs.counter, "counter"]]) {
      const tr = el("tr");
      tr.append(el("td", null, label));
      const td = el("td", "amount", eur(v));
      td.dataset.amount = key;
      tr.append(td);
      t.append(tr);
    }
    s.append(t);
    if (cs.rights) s.append(el("p", "basis", "Facturée sur : " + (RIGHTS[cs.rights.status] || cs.rights.status)
      + (cs.rights.source ? " (" + (SOURCE[cs.rights.source] || cs.rights.source) + (cs.rights.as_of_iso ? " du " + frDate(cs.rights.as_of_iso) : "") + ")" : "")));
  }

  // --- acting ----------------------------------------------------------------------------
  function pick(person) {
    if (!state.tx || state.tx.state !== "awaiting_beneficiary") return;
    if (person < 0 || person >= state.tx.people.length) return;
    state.pending = person;
    state.escArmed = 0;
    renderPeople();
    const li = $("people").querySelector('li[data-person="' + person + '"]');
    if (li) li.focus();
  }

  async function confirmChoice() {
    const tx = state.tx;
    if (!tx || tx.state !== "awaiting_beneficiary" || state.pending === null) return;
    const r = await call("POST", "/ecran/transactions/" + tx.id + "/beneficiaire", { person: state.pending });
    if (r.status === 200) { say(""); showTx(r.data); } else say(r.data.message || "Choix refusé");
  }

  async function cancelTx() {
    const tx = state.tx;
    if (!tx || (tx.state !== "awaiting_beneficiary" && tx.state !== "ready")) return;
    const r = await call("POST", "/ecran/transactions/" + tx.id + "/annulation", {});
    if (r.status === 200) { say("Transaction annulée", true); showTx(r.data); } else say(r.data.message || "Annulation refusée");
  }

  async function dispense(ev) {
    ev.preventDefault();
    const tx = state.tx;
    if (!tx || tx.state !== "ready") return;
    const lines = [];
    for (const div of $("lines").querySelectorAll(".line")) {
      const code = div.querySelector(".code").value.trim();
      if (!code) continue;
      lines.push({ cip13: code, quantity: parseInt(div.querySelector(".qty").value, 10) || 0 });
    }
    const body = { person: tx.chosen, lines, prescriber_rpps: $("prescriber").value.trim(),
                   tiers_payant: { amo: $("tp-amo").checked, amc: $("tp-amc").checked } };
    const r = await call("POST", "/ecran/transactions/" + tx.id + "/dispensation", body);
    if (r.status === 201) { say("Feuille de soins enregistrée", true); showTx(r.data); loadDay(); }
    else say(r.data.message || "Dispensation refusée");
  }

  function onKey(ev) {
    const t = ev.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
    const tx = state.tx;
    if (ev.key === "Escape") {
      ev.preventDefault();
      if (state.pending !== null) { state.pending = null; renderPeople(); return; }
      if (!tx || (tx.state !== "awaiting_beneficiary" && tx.state !== "ready")) return;
      if (state.escArmed && Date.now() - state.escArmed < 4000) { state.escArmed = 0; cancelTx(); return; }
      state.escArmed = Date.now();
      say("Échap encore une fois pour annuler la transaction", true);
      return;
    }
    if (typing) return;
    if (/^[1-9]$/.test(ev.key) && tx && tx.state === "awaiting_beneficiary") {
      ev.preventDefault();
      pick(parseInt(ev.key, 10) - 1);
    } else if (ev.key === "Enter" && tx && tx.state === "awaiting_beneficiary" && state.pending !== null) {
      ev.preventDefault();
      confirmChoice();
    }
  }

  // --- the day ---------------------------------------------------------------------------
  async function loadDay() {
    const r = await call("GET", "/ecran/journee");
    if (r.status !== 200) return;
    const d = r.data;
    const alerts = $("alerts");
    alerts.replaceChildren();
    for (const a of d.alerts) {
      const div = el("div", "alert", a.text);
      div.dataset.code = a.code;
      alerts.append(div);
    }
    const day = $("day");
    day.replaceChildren();
    const tr = el("section");
    const n = d.transactions;
    tr.append(el("h2", null, "Transactions"));
    tr.append(el("div", null, (n.dispensed || 0) + " dispensée(s), " + (n.cancelled || 0) + " annulée(s), "
      + ((n.awaiting_beneficiary || 0) + (n.ready || 0)) + " en cours"));
    day.append(tr);
    const lots = el("section");
    lots.append(el("h2", null, "Lots"));
    for (const o of d.open_lots) lots.append(el("div", "lot-open", "Lot en cours : " + o.sheets + " feuille(s) depuis " + frDate(o.since_iso)));
    for (const l of d.lots) lots.append(el("div", "lot-closed", "Lot " + l.lot + " fermé : " + l.count + " feuille(s), " + eur(l.total)
      + (l.exported.length ? " · exporté" : " · à exporter")));
    if (!d.open_lots.length && !d.lots.length) lots.append(el("div", null, "Aucun lot aujourd'hui"));
    day.append(lots);
    const ex = el("section");
    ex.append(el("h2", null, "Exports"));
    for (const e of d.exports) ex.append(el("div", null, e.kind + " lot " + e.lot + " · " + frDate(e.at_iso)));
    if (!d.exports.length) ex.append(el("div", null, "Aucun export aujourd'hui"));
    day.append(ex);
  }

  // --- live ------------------------------------------------------------------------------
  function onCounter(ev) {
    const data = JSON.parse(ev.data);
    const c = data.counter;
    const before = state.counters[c.port];
    upsert(c);
    const fresh = c.presentation && (!before || !before.presentation || before.presentation.at_ms !== c.presentation.at_ms
                                     || before.transaction !== c.transaction);
    const busy = state.tx && (state.tx.state === "awaiting_beneficiary" || state.tx.state === "ready")
                 && state.counters[state.selected] && state.counters[state.selected].transaction === state.tx.id;
    if (state.selected === null || (fresh && c.port !== state.selected && !busy)) state.selected = c.port;
    renderCounters();
    if (c.port === state.selected) {
      renderVerdict();
      if (c.transaction && (fresh || data.transaction === c.transaction)) loadTx(c.transaction);
      else if (!c.transaction && fresh) showTx(null);
    }
    if (c.port === state.selected && c.transaction && tapFailedLast(c)
        && (!before || !before.tap_failed || before.tap_failed.at_ms !== c.tap_failed.at_ms))
      say("Lecture interrompue sur " + counterName(c.port) + " : si un patient attend, qu'il repose son téléphone", true);
    if (fresh || data.action || (before && before.link !== c.link)) loadDay();
  }

  async function start() {
    const r = await call("GET", "/ecran/etat");
    if (r.status !== 200) return;
    state.catalogue = r.data.catalogue;
    state.dispensing = r.data.dispensing;
    const dl = $("catalogue");
    for (const p of state.catalogue) {
      const o = el("option");
      o.value = p.cip13;
      o.textContent = p.label;
      dl.append(o);
    }
    for (const c of r.data.counters) upsert(c);
    let latest = null;
    for (const c of r.data.counters) {
      if (c.presentation && (!latest || c.presentation.at_ms > latest.presentation.at_ms)) latest = c;
    }
    select(latest ? latest.port : (state.order[0] || null), true);
    loadDay();
    const es = new EventSource("/ecran/flux");
    es.addEventListener("open", () => { $("connection").textContent = "En direct"; $("connection").className = "pill live";
                                        document.body.dataset.live = "true"; });
    es.addEventListener("counter", onCounter);
    es.addEventListener("day", loadDay);
    es.addEventListener("session", () => { es.close(); sessionLost(); });
    es.addEventListener("error", () => {
      document.body.dataset.live = "false";
      $("connection").textContent = "Reconnexion…"; $("connection").className = "pill lost";
      call("GET", "/ecran/etat");  // a 401 tells the session is over
    });
    setInterval(loadDay, 30000);
  }

  function tick() {
    $("clock").textContent = new Date().toLocaleString("fr-FR", { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" });
  }

  document.addEventListener("keydown", onKey);
  $("dispense").addEventListener("submit", dispense);
  $("addline").addEventListener("click", () => addLine().focus());
  $("cancel").addEventListener("click", cancelTx);
  $("signout").addEventListener("click", async () => { await call("POST", "/ecran/deconnexion", {}); sessionLost(); });
  tick();
  setInterval(tick, 15000);
  start();
})();
