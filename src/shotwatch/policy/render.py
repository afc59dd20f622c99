"""Write the published policy document from the running configuration.

The document (Markdown, HTML, PDF) is built from the validated policy files and the current
settings, so what the public reads and what the software enforces cannot drift apart: every
rule is printed with its id, the policy's own words, and the conditions ShotWatch enforces.
One block model renders to all three formats.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from shotwatch.core.settings import PolicySettings
from shotwatch.policy.actions import Action, action_from_value
from shotwatch.policy.engine import requirements_text
from shotwatch.policy.schema import Forbid, PolicyFile

DOC_KIND = {
    "impact_and_use": "Impact and Use Policy",
    "surveillance_technology": "Surveillance Technology Policy",
}


@dataclass
class Block:
    kind: str  # h1 | h2 | h3 | p | quote | list | table
    text: str = ""
    items: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def forbid_text(pol: PolicyFile, f: Forbid) -> str:
    acts = ", ".join(f.actions) if f.actions else "every action"
    what = {
        "purpose": f"denied when the stated purpose is {', '.join(f.purposes)}",
        "purpose_not_in": f"denied when a purpose other than {', '.join(f.purposes)} is stated",
        "resource_flag": f"denied on data flagged {f.flag!r}",
        "remote": "denied from any remote connection",
        "remote_without_second_factor": "denied from a remote connection without a second factor",
        "resource_kind": f"denied on data of kind {', '.join(f.resource_kinds)}",
        "subject_category": f"denied for subjects: {', '.join(f.categories)}",
        "disclosure_basis": "denied unless one of the disclosure conditions below is given "
        "(with Agency Privacy Officer approval where the condition requires it)",
    }[f.kind]
    exc = []
    if f.except_bureaus:
        exc.append(f"except for bureau {', '.join(f.except_bureaus)}")
    if f.except_roles:
        exc.append(f"except for role {', '.join(f.except_roles)}")
    return f"{acts}: {what}" + (f" ({'; '.join(exc)})" if exc else "")


def _action_label(value: str) -> str:
    a: Action = action_from_value(value)
    return f"{value} ({a.spec.help.rstrip('.')})"


def document(pol: PolicyFile, settings: PolicySettings, source_sha256: str = "") -> list[Block]:
    m = pol.policy
    b: list[Block] = [
        Block("h1", f"{m.agency}: {m.title}"),
        Block(
            "p",
            f"{DOC_KIND[m.document_kind]} as enforced by ShotWatch. Source: {m.source}. "
            f"Adopted {m.adopted.isoformat()}.",
        ),
        Block("p", m.summary),
        Block(
            "p",
            "This document is generated from the policy file that ShotWatch enforces "
            f"(policy id {m.id}"
            + (f", SHA-256 {source_sha256}" if source_sha256 else "")
            + "). Every rule below is enforced as written, or, where it binds people "
            "rather than software, says what ShotWatch records about it.",
        ),
        Block("h2", "Authorized purposes"),
        Block("list", items=list(pol.purposes)),
        Block("h2", "Roles"),
        Block(
            "table",
            rows=[["Role", "Title", "Policy text"]]
            + [[r.name, r.title, r.text] for r in pol.roles],
        ),
    ]
    if pol.ranks:
        b.append(Block("p", "Ranks, lowest first: " + ", ".join(pol.ranks) + "."))
    if pol.workstations:
        b.append(Block("p", "Workstation allow-list: " + ", ".join(pol.workstations) + "."))
    b.append(Block("h2", "Who may do what"))
    for p in pol.permit:
        b += [
            Block("h3", f"{p.id}: {p.section}"),
            Block("quote", p.text),
            Block("p", "Actions: " + "; ".join(_action_label(a) for a in p.actions) + "."),
            Block("p", "Enforced conditions: " + requirements_text(pol, p) + "."),
        ]
    if pol.forbid:
        b.append(Block("h2", "What is never allowed"))
        for f in pol.forbid:
            b += [
                Block("h3", f"{f.id}: {f.section}"),
                Block("quote", f.text),
                Block("p", "Enforced: " + forbid_text(pol, f) + "."),
            ]
    if pol.disclosure:
        d = pol.disclosure
        b += [
            Block("h2", "External disclosure"),
            Block("h3", f"{d.id}: {d.section}"),
            Block("quote", d.text),
            Block(
                "list",
                items=[
                    f"{x.id}: {x.text}"
                    + (
                        " [needs Agency Privacy Officer approval]"
                        if x.needs_privacy_officer_approval
                        else ""
                    )
                    for x in d.bases
                ],
            ),
        ]
    if pol.retention or pol.case_closure:
        b.append(Block("h2", "Retention"))
        for r in pol.retention:
            hours = (r.period_s or 0) / 3600
            how = {
                "after_creation": f"disposed {r.period_s} s ({hours:g} h) after recording",
                "visibility": f"hidden {r.period_s} s ({hours / 24:g} days) after recording",
                "after_close": f"kept at least {r.years} years after the case closes",
                "permanent": "kept permanently",
                "until_age": f"kept until the subject reaches age {r.age_years}",
                "evidence": "kept as evidence with the case",
                "personal_data_file": f"kept {r.after_death_years} years after death, or "
                f"{r.birth_years} years after birth with no arrest in the last "
                f"{r.no_arrest_years} years, whichever is shorter",
            }[r.clock]
            cls = f" ({', '.join(r.classifications)})" if r.classifications else ""
            b += [
                Block("h3", f"{r.id}: {r.record_class}{cls}"),
                Block("quote", r.text),
                Block(
                    "p",
                    f"Enforced: {how}. Legal holds block disposal; disposal needs two "
                    "different approvers and issues a signed destruction certificate.",
                ),
            ]
        if pol.case_closure:
            c = pol.case_closure
            b += [
                Block("h3", f"{c.id}: case closure"),
                Block("quote", c.text),
                Block("p", "Accepted closure reasons: " + ", ".join(c.reasons) + "."),
            ]
    t = pol.training
    b += [
        Block("h2", "Training"),
        Block("h3", f"{t.id}: {t.section}"),
        Block("quote", t.text),
        Block("p", "Before first access every user must acknowledge these authorized uses:"),
        Block("list", items=list(t.authorized_uses)),
        Block("p", "and these prohibited uses:"),
        Block("list", items=list(t.prohibited_uses)),
    ]
    if pol.sanctions:
        s = pol.sanctions
        b += [
            Block("h2", "Sanctions"),
            Block("h3", f"{s.id}: {s.section}"),
            Block("quote", s.text),
            Block("list", items=[f"Offense {x.offense}: {x.measure}" for x in s.steps]),
        ]
    if pol.focused_audit:
        fa = pol.focused_audit
        b += [
            Block("h2", "Audit and oversight"),
            Block("h3", f"{fa.id}: {fa.section}"),
            Block("quote", fa.text),
            Block(
                "p",
                "Focused audits by user, item and period may be requested by: "
                + ", ".join(fa.requesters)
                + ".",
            ),
        ]
    b += [
        Block(
            "p",
            "Every sign-in, search, view, change, export and disclosure is written to an "
            "append-only audit log with its purpose and the rules that decided. The log "
            "is a Merkle tree (RFC 6962); signed checkpoints are made every "
            f"{settings.audit_checkpoint_every} entries and can be published, and "
            "`shotwatch audit verify` names the first altered, deleted, inserted or "
            "reordered entry.",
        )
    ]
    if pol.statement:
        b.append(Block("h2", "Other commitments"))
        for st in pol.statement:
            b += [
                Block("h3", f"{st.id}: {st.section}"),
                Block("quote", st.text),
                Block("p", "How ShotWatch supports it: " + st.recorded_by),
            ]
    b += [
        Block("h2", "Authentication settings in force"),
        Block(
            "list",
            items=[
                "On-site networks (anything else is remote and needs a TOTP second factor): "
                + ", ".join(settings.internal_networks),
                f"Sessions end {settings.session_expiry_s:g} s after sign-in or after "
                f"{settings.session_idle_s:g} s idle, and at once on transfer.",
                f"Accounts lock for {settings.lockout_s:g} s after "
                f"{settings.lockout_failures} failed sign-ins in a row.",
                "Passwords are stored only as Argon2id hashes.",
            ],
        ),
    ]
    return b


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for bl in blocks:
        if bl.kind == "h1":
            out.append(f"# {bl.text}\n")
        elif bl.kind == "h2":
            out.append(f"## {bl.text}\n")
        elif bl.kind == "h3":
            out.append(f"### {bl.text}\n")
        elif bl.kind == "p":
            out.append(bl.text + "\n")
        elif bl.kind == "quote":
            out.append("> " + bl.text + "\n")
        elif bl.kind == "list":
            out.append("\n".join(f"- {i}" for i in bl.items) + "\n")
        elif bl.kind == "table":
            head = bl.rows[0]
            esc = [[c.replace("|", "\\|") for c in r] for r in bl.rows]
            out.append("| " + " | ".join(esc[0]) + " |")
            out.append("|" + "---|" * len(head))
            out.extend("| " + " | ".join(r) + " |" for r in esc[1:])
            out.append("")
    return "\n".join(out)


def to_html(blocks: Sequence[Block], title: str) -> str:
    e = html.escape
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}'
        "</title><style>body{font-family:sans-serif;max-width:50em;margin:2em auto;"
        "line-height:1.4}blockquote{border-left:3px solid #999;margin-left:0;padding-left:1em;"
        "color:#333}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em}"
        "</style></head><body>"
    ]
    for bl in blocks:
        if bl.kind in ("h1", "h2", "h3"):
            parts.append(f"<{bl.kind}>{e(bl.text)}</{bl.kind}>")
        elif bl.kind == "p":
            parts.append(f"<p>{e(bl.text)}</p>")
        elif bl.kind == "quote":
            parts.append(f"<blockquote>{e(bl.text)}</blockquote>")
        elif bl.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in bl.items) + "</ul>")
        elif bl.kind == "table":
            head, *rest = bl.rows
            parts.append(
                "<table><tr>"
                + "".join(f"<th>{e(c)}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rest)
                + "</table>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _latin1(text: str) -> str:
    table = {
        "\u2019": "'",
        "\u2018": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
    s = "".join(table.get(c, c) for c in text)
    return s.encode("latin-1", "replace").decode("latin-1")


def to_pdf(blocks: Sequence[Block], title: str) -> bytes:
    """PDF with fpdf2 (pure Python, core fonts)."""
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_title(_latin1(title))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def para(text: str, size: float, style: str = "", indent: float = 0.0) -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(width - indent, size * 0.5, _latin1(text))
        pdf.ln(1.5)

    for bl in blocks:
        if bl.kind == "h1":
            para(bl.text, 16, "B")
        elif bl.kind == "h2":
            para(bl.text, 13, "B")
        elif bl.kind == "h3":
            para(bl.text, 11, "B")
        elif bl.kind == "p":
            para(bl.text, 10)
        elif bl.kind == "quote":
            para(bl.text, 10, "I", indent=6)
        elif bl.kind == "list":
            for i in bl.items:
                para("- " + i, 10, indent=4)
        elif bl.kind == "table":
            for r in bl.rows[1:]:
                para(f"{r[0]} - {r[1]}: {r[2]}", 10, indent=2)
    return bytes(pdf.output())


def file_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
