"""Investigate: from a statement (recorded, or pasted) to its plan, the slow node, the reason and the fix.

A run asks a server: nothing is explained on opening the page, except the estimated plan of a
recorded statement opened from Query detail (`?id=N`), which is cheap, runs nothing, and goes only to
the server and database the statement was recorded on; a link that names another target or database,
or asks for ANALYZE, fills the form and waits for a click. ANALYZE runs the statement (rolled back):
only where the target's config allows it, and only on a click.

The URL carries what was explained (`?id=N` or a short `?sql=`, `target=`, `db=`, `analyze=1`), so a
copied link opens the same form; values for $n are left out of it (they may be someone's data).
"""

from __future__ import annotations

import streamlit as st

from dashboard.analysis import investigate, plan_history
from dashboard.analysis.investigate import Choice, Link, Subject
from dashboard.analysis.plan_history import Version
from dashboard.analysis.sqltext import one_line
from dashboard.plans import document
from dashboard.plans.compare import compare
from dashboard.plans.document import PlanDocument
from dashboard.plans.findings import find
from dashboard.plans.run import Explained
from dashboard.plans.tree import Plan, PlanUnreadable
from dashboard.ui import access, cached, plan_view, sql_block
from dashboard.ui import frame as ui

LINK = "inv.link"  # the deep link the form was last filled from
RESULT = "inv.result"  # (the inputs, the Explained) of the last Explain
TEXT, TARGET, DB, ANALYZE = "inv.sql", "inv.target", "inv.db", "inv.analyze"
VALUE = "inv.value.{}"  # $1 is inv.value.0
FILLED = "inv.filled"  # what "Fill with sample values" found, or why not
MAX_VALUES = 24  # inputs for $1..$n; a statement with more gets a generic plan

NO_TARGET = """**No PostgreSQL target is configured**, so there is no server to ask for a plan. Name one
in `observatory.yaml` (or the file `$OBSERVATORY_CONFIG` names):
```yaml
targets:
  postgres:
    - name: erp-primary
      dsn: postgresql://monitor@db1:5432/erp
      explain_analyze: true   # optional: lets EXPLAIN ANALYZE run statements here (rolled back)
```
A plan saved earlier (a JSON file) can still be opened below."""


def fill_form(link: Link, subject: Subject | None, choices: list[Choice]) -> bool:
    """Fill the form from the deep link when it is new (or the form was dropped by a page switch);
    True when the link asks for the estimated plan of a recorded statement at once."""
    if st.session_state.get(LINK) == link and TEXT in st.session_state:
        return False
    st.session_state[LINK] = link
    st.session_state.pop(RESULT, None)
    st.session_state.pop(FILLED, None)
    for i in range(MAX_VALUES):
        st.session_state.pop(VALUE.format(i), None)
    names = [c.name for c in choices]
    if link.target in names:
        target = link.target
    elif subject is not None and subject.target in names:
        target = subject.target
    else:
        target = names[0]
    chosen = choices[names.index(target)]
    own_db = subject.database if subject is not None and subject.target == target else None
    st.session_state[TARGET] = target
    st.session_state[DB] = link.db or own_db or chosen.database or ""
    st.session_state[TEXT] = subject.text if subject is not None else link.sql or ""
    # ANALYZE comes ticked from a link only for a recorded statement: a `?sql=` link is anyone's text.
    st.session_state[ANALYZE] = link.analyze and chosen.analyze and subject is not None
    return opens_at_once(link, subject, target)


def opens_at_once(link: Link, subject: Subject | None, target: str) -> bool:
    """Whether the link's estimated plan is asked for on opening, without a click: only a recorded
    statement's, on the target it was recorded on (the form's `target`) and its database (a crafted
    `&target=` or `&db=` must not send it elsewhere), and never ANALYZE."""
    if subject is None or link.analyze or target != subject.target:
        return False
    return link.target in (None, subject.target) and link.db in (None, subject.database)


def target_changed(choices: list[Choice]) -> None:
    """A target picked: its own database, and ANALYZE off where it is not allowed."""
    chosen = next((c for c in choices if c.name == st.session_state.get(TARGET)), None)
    if chosen is not None:
        st.session_state[DB] = chosen.database or ""
        if not chosen.analyze:
            st.session_state[ANALYZE] = False


def fill_values(target: str, datname: str, text: str, n: int) -> None:
    """The button's callback: sample values into the inputs (before they are drawn again)."""
    try:
        found = cached.sample_values(target, datname, text)
    except ValueError as err:
        st.session_state[FILLED] = f"No sample values: {err}"
        return
    filled = 0
    for i in range(n):
        value = found[i] if i < len(found) else None
        if value is not None:
            st.session_state[VALUE.format(i)] = value
            filled += 1
    st.session_state[FILLED] = f"Filled {filled} of {n} from the columns' statistics (pg_stats)" + (
        "." if filled == n else "; nothing is known for the others: fill them in, or leave all empty."
    )


def values_inputs(target: str, datname: str, text: str, n: int) -> tuple[str, ...] | None:
    """Inputs for $1..$n; None when there are none (or too many: a generic plan)."""
    if n == 0:
        return None
    if n > MAX_VALUES:
        st.caption(f"$1 to ${n}: over {MAX_VALUES} values to give, so the plan is a generic one.")
        return None
    st.markdown(f"**Values for $1{f' to ${n}' if n > 1 else ''}**")
    cols = st.columns(min(n, 4))
    values = tuple(
        cols[i % len(cols)].text_input(f"${i + 1}", key=VALUE.format(i), max_chars=investigate.VALUE_MAX)
        for i in range(n)
    )
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.button(
        "Fill with sample values",
        icon=":material/auto_fix_high:",
        on_click=fill_values,
        args=(target, datname, text, n),
        help="The most common values of the columns each $n is compared with (pg_stats)",
    )
    right.caption(
        ui.md_escape(st.session_state.get(FILLED) or "")
        or "Leave them all empty for a generic plan (as a prepared statement may run); ANALYZE needs values."
    )
    return values


def current_link(subject: Subject | None, text: str, target: str, datname: str, analyze: bool) -> Link:
    """The deep link of these inputs: the recorded statement's id while its text is unchanged, else
    the text when it is short enough for a URL."""
    if subject is not None and text == subject.text:
        return Link(id=subject.id, target=target, db=datname or None, analyze=analyze)
    sql = text if len(text) <= investigate.SQL_LINK_MAX else None
    return Link(sql=sql or None, target=target, db=datname or None, analyze=analyze)


def put_in_url(link: Link) -> None:
    wanted = link.params()
    for key in investigate.LINK_KEYS:
        if key in wanted:
            if st.query_params.get(key) != wanted[key]:
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]
    st.session_state[LINK] = link


def result(explained: Explained, target: str) -> None:
    """What the server said: the error, or the plan with its findings, index proposal, icicle and tree."""
    where = [target, explained.database or "", _version(explained.server_version)]
    when = ui.utc(explained.captured_at.timestamp()) if explained.captured_at else ""
    st.caption(" · ".join(ui.md_escape(w) for w in [*where, when] if w))
    if explained.error or explained.plan is None:
        st.error(ui.md_escape(explained.error or "No plan came back."), icon=":material/error:")
        return
    for note in explained.notes:
        st.info(ui.md_escape(note), icon=":material/info:")
    plan = explained.plan
    plan_view.figures(plan, generic=explained.generic, command=explained.command)
    show_plan(plan, explained.findings, key="inv.plan")
    if explained.proposal is not None:
        proposal(explained)
    saved = investigate.plan_document(explained, target)
    plan_view.json_box(plan, lambda: document.dumps(saved), document.file_name(saved), key="inv.plan")


def show_plan(plan: Plan, findings: list, *, key: str) -> None:
    st.subheader("Findings")
    plan_view.findings(plan, findings)
    st.subheader(f"Where the {'time' if plan.analyzed else 'cost'} goes")
    plan_view.icicle(plan)
    st.subheader("The plan, node by node")
    plan_view.tree_table(plan, findings, key=f"{key}:tree")


def proposal(explained: Explained) -> None:
    p = explained.proposal
    assert p is not None
    st.subheader("With the index the advisor proposes")
    st.caption("Both plans estimated, the index a hypothetical one (HypoPG): nothing was created.")
    sql_block.show(p.create_sql)
    plan_view.comparison(compare(p.before, p.after), ("Now", "With the index"))


def _version(number: int | None) -> str:
    if not number:
        return ""
    major, minor = divmod(number, 10000)  # server_version_num: 150004 is 15.4, 90624 is 9.6.24
    if major < 10:
        return f"PostgreSQL {major}.{minor // 100}.{minor % 100}"
    return f"PostgreSQL {major}.{minor}"


def load_box(current: Plan | None) -> None:
    """Open a saved plan (a file, or pasted JSON): beside the current plan when there is one."""
    title = "Compare with a saved plan" if current is not None else "Open a saved plan"
    shown = st.expander(title, icon=":material/upload_file:", key="inv.load", on_change="rerun")
    if not shown.open:
        return
    with shown:
        st.caption(
            "A plan file downloaded here, or the output of EXPLAIN (FORMAT JSON, ...) as psql prints it or "
            "pgAdmin copies it: another day's, another server's."
        )
        uploaded = st.file_uploader("Plan file", type=["json", "txt"], key="inv.upload")
        pasted = st.text_area("Or paste it", key="inv.pasted", height=120)
        data = uploaded.getvalue() if uploaded is not None else pasted
        if not data or (isinstance(data, str) and not data.strip()):
            return
        try:
            other = investigate.load_plan(data)
        except PlanUnreadable as err:
            st.error(f"Not a plan: {ui.md_escape(err)}", icon=":material/error:")
            return
    name = uploaded.name if uploaded is not None else "the pasted plan"
    if current is None:
        st.subheader(f"Saved plan: {ui.md_escape(name)}")
        saved_facts(other)
        plan_view.figures(other.plan, generic=other.generic, command=other.command or "")
        show_plan(other.plan, find(other.plan), key="inv.loaded")
        return
    st.subheader("The saved plan and this one")
    saved_facts(other)
    plan_view.comparison(compare(other.plan, current), (f"Saved: {name}", "This plan"))


def history_box(subject: Subject) -> None:
    """The statement's plan as the daemon's advisor kept it, one version per shape, and two dates
    compared: the plan it had before it got slower, against the one it has now."""
    found = [v for v in plan_history.history(reader, subject.id) if v.plan is not None]
    if not found:
        return
    flips = sum(v.changed for v in found)
    title = f"Plan history: {len(found)} plan{'s' if len(found) != 1 else ''}" + (
        f", changed {flips} time{'s' if flips != 1 else ''}" if flips else ", the same shape throughout"
    )
    shown = st.expander(title, icon=":material/history:", key="inv.history", on_change="rerun")
    if not shown.open:
        return
    with shown:
        st.caption(
            "Estimated generic plans, kept by the daemon's index advisor each time it plans this statement "
            "(one entry per plan shape): a change of plan is a classic reason a statement got slower."
        )
        labels = [_version_label(v) for v in found]
        st.markdown("\n".join(f"- {ui.md_escape(label)}" for label in labels))
        if len(found) < 2:
            return
        cols = st.columns(2)
        older = cols[0].selectbox("Plan of", range(len(found)), index=1, format_func=labels.__getitem__,
                                  key="inv.history.a")  # fmt: skip
        newer = cols[1].selectbox("against the plan of", range(len(found)), index=0,
                                  format_func=labels.__getitem__, key="inv.history.b")  # fmt: skip
        a, b = found[older], found[newer]
        plan_view.comparison(compare(a.plan, b.plan), (_when(a), _when(b)))


def _version_label(v: Version) -> str:
    mark = " (the plan changed)" if v.changed else ""
    return f"{ui.utc(v.first_seen)} to {ui.utc(v.last_seen)}: cost {v.cost:,.0f}{mark}"


def _when(v: Version) -> str:
    return f"from {ui.utc(v.first_seen)}"


def recorded(subject: Subject) -> None:
    """Which recorded statement the page is about, and a link to its history."""
    cols = st.columns([3, 1], vertical_alignment="center")
    about = " · ".join(ui.md_escape(v or "unknown") for v in (subject.target, subject.database))
    cols[0].caption(f"Recorded statement #{subject.id} on {about}")
    cols[1].page_link(ui.QUERY_PAGE, label="Its history", icon=":material/search:",
                      query_params={"id": str(subject.id)})  # fmt: skip


def saved_facts(doc: PlanDocument) -> None:
    """Where and when a saved plan was taken (as its file says), and its statement."""
    facts = [doc.target or "", doc.database or "", _version(doc.server_version)]
    when = ui.utc(doc.captured_at.timestamp()) if doc.captured_at else ""
    said = " · ".join(ui.md_escape(f) for f in [*facts, when] if f)
    st.caption(
        f"Taken on {said}" if said else "Where and when it was taken is not in it (a bare EXPLAIN output)."
    )
    if doc.statement:
        ui.preformatted(doc.statement)


st.title("Investigate")
st.caption(
    "From a slow statement to its plan: where the time goes, the node that spends it, why, and what to "
    "do about it. A recorded statement opens here from Query detail; or paste one."
)
reader = cached.reader()
choices = investigate.choices(reader.config)
link = investigate.link(st.query_params.to_dict())
subject = investigate.subject(reader, link.id) if link.id is not None else None
if link.bad_id is not None or (link.id is not None and subject is None):
    shown_id = link.bad_id if link.bad_id is not None else link.id
    missing = f"No recorded statement with id '{ui.md_escape(shown_id)}' in this store."
    st.error(missing, icon=":material/search_off:")
if link.sql_cut:
    st.warning(
        f"The link's statement is over {investigate.SQL_LINK_MAX:,} characters: paste it below.",
        icon=":material/content_cut:",
    )

current: Plan | None = None
if not choices:
    st.info(NO_TARGET, icon=":material/info:")
elif not access.sql_allowed(reader.config):  # every plan, even an estimated one, asks the server
    if subject is not None:
        recorded(subject)
        ui.preformatted(subject.text)
        history_box(subject)  # plans the daemon recorded: read from the store
else:
    auto = fill_form(link, subject, choices)
    if subject is not None:
        recorded(subject)
    text = st.text_area(
        "Statement",
        key=TEXT,
        height=140,
        placeholder="SELECT * FROM orders WHERE customer_id = $1",
        help="One SELECT, WITH, VALUES, INSERT, UPDATE, DELETE or MERGE statement. It is planned in a "
        "transaction that is always rolled back.",
    )
    by_name = {c.name: c for c in choices}
    cols = st.columns([2, 2, 3], vertical_alignment="bottom")
    target = cols[0].selectbox("Target", list(by_name), key=TARGET, on_change=target_changed, args=(choices,))
    chosen = by_name[target]
    datname = cols[1].text_input("Database", key=DB, placeholder=chosen.database or "the DSN's").strip()
    if not chosen.analyze:
        st.session_state[ANALYZE] = False
    analyze = cols[2].checkbox(
        "ANALYZE: run it (rolled back) for actual rows and times",
        key=ANALYZE,
        disabled=not chosen.analyze,
    )
    if not chosen.analyze:
        st.caption(
            f"ANALYZE is off for {ui.md_escape(target)}: it runs the statement. To allow it, set "
            "`explain_analyze: true` under the target in the configuration (and "
            "`explain_analyze_writes: true` for statements that write)."
        )
    values = values_inputs(target, datname, text, investigate.placeholders(text))
    asked = st.button("Explain", type="primary", icon=":material/play_arrow:", disabled=not text.strip())
    inputs = (target, datname, text, analyze, values)
    if (asked or auto) and text.strip():
        explained = cached.explain(target, datname, text, analyze, values)
        st.session_state[RESULT] = (inputs, explained)
        put_in_url(current_link(subject, text, target, datname, analyze))
    stored = st.session_state.get(RESULT)
    if stored is not None:
        shown_inputs, explained = stored
        st.divider()
        if shown_inputs != inputs:
            then = ui.md_escape(one_line(shown_inputs[2], 80))
            st.caption(
                f"The plan of the inputs as they were when explained ({then} on "
                f"{ui.md_escape(shown_inputs[0])}): press Explain for the inputs as they are now."
            )
        result(explained, shown_inputs[0])
        current = explained.plan
    if subject is not None:
        history_box(subject)
load_box(current)
