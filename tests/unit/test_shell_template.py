"""Tests of the `shell:` template check: what it accepts never runs an event value as code."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opsmedic.actions import run_command
from opsmedic.errors import ConfigError
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.templating import Templates

# bash also as /bin/sh is where it is bash (RHEL, Fedora): in POSIX mode it expands aliases.
SHELLS = [argv for argv in (["dash"], ["bash"], ["bash", "--posix"]) if shutil.which(argv[0])]
VALUE = "{{ event.labels.v | shquote }}"
# Each tries to leave its word by another route: a newline ending a comment, a quote ending
# the quotes around it, command substitution, backticks, a here-document's end marker.
PAYLOADS = [
    "\ntouch pwned\n",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "$(touch pwned)",
    "`touch pwned`",
    "'$(touch pwned)'",
    "\nEOF\ntouch pwned\nEOF\n",
    "\\'; touch pwned #",
    "x[$(touch pwned)]",  # an array subscript: bash evaluates it in arithmetic contexts
]


def _accepts(script: str) -> bool:
    try:
        run_command.Params.model_validate({"shell": script})
    except ValidationError:
        return False
    return True


def _refusal(script: str) -> str:
    with pytest.raises(ValidationError) as info:
        run_command.Params.model_validate({"shell": script})
    return str(info.value)


def _runs_a_payload(template: str, value: str) -> bool:
    """Render `template` with `value` as it would be for a run; True if, under dash or
    bash, the value created the file `pwned`."""
    context: dict[str, Any] = {"event": {"labels": {"v": value}}}
    script = str(Templates().render(template, context))
    for shell in SHELLS:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [*shell, "-c", script], cwd=tmp, stdin=subprocess.DEVNULL,
                capture_output=True, timeout=20, check=False,
            )  # fmt: skip
            if (Path(tmp) / "pwned").exists():
                return True
    return False


@pytest.mark.parametrize(
    ("template", "payload"),
    [
        (f"echo ok # alert {VALUE}", "\ntouch pwned\n"),
        (
            f'{{% if event.labels.v %}}echo "{{% else %}}echo {{% endif %}}{VALUE}"',
            "$(touch pwned)",
        ),
    ],
)
def test_the_two_reported_templates_were_injections_and_are_refused(
    template: str, payload: str
) -> None:
    """Both templates that passed the old check ran a value as a command (shown here by
    rendering them anyway, which also shows this harness can fail); both are now refused."""
    assert _runs_a_payload(template, payload)
    assert not _accepts(template)


def test_the_rules_loader_refuses_it_naming_file_line_and_column(tmp_path: Path) -> None:
    """The whole rule file is refused at load; the problem names the file, the line and
    column of the `shell:` value, and the line and column inside the template."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- name: a\n  when: {source: x}\n  do:\n    - run_command:\n        shell: |\n"
        "          echo ok\n          echo ok # alert {{ event.labels.v | shquote }}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_rules(rules, build_registry())
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith(f"{rules}:5:16: [0].do[0].run_command.shell:"), problem
    assert "line 2, col 17: {{ … | shquote }} must be a whole shell word" in problem


@pytest.mark.parametrize(
    ("template", "place"),
    [
        (f"echo ok # alert {VALUE}", "line 1, col 17"),
        (f"echo ok\n  echo x #{VALUE}", "line 2, col 11"),
        (f'echo "{VALUE}"', "line 1, col 7"),
        (f"echo '{VALUE}'", "line 1, col 7"),
        (f"echo x{VALUE}", "line 1, col 7"),
        (f"echo --name={VALUE}", "line 1, col 13"),
        (f"echo \\{VALUE}", "line 1, col 7"),
        (f"echo ${VALUE}", "line 1, col 7"),
        ("echo x\n  {{- event.labels.v | shquote }}", "line 2, col 3"),
        (f"{{% if event.host %}}echo {VALUE}{{% endif %}}", "line 1, col 1"),
        (f"echo {VALUE}\n  {{% for x in [1] %}}{{% endfor %}}", "line 2, col 3"),
    ],
)
def test_a_value_that_is_not_a_whole_word_is_refused_with_its_place(
    template: str, place: str
) -> None:
    """Comments, quotes, glued text, escapes and blocks: refused, naming line and column."""
    assert place in _refusal(template)


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("echo {{ event.host }}", "must end in '| shquote'"),
        ("echo {{ event.host | upper }}", "must end in '| shquote'"),
        ("echo {{ event.host | shquote | upper }}", "must end in '| shquote'"),
        ("echo {{ event.host | shquote(1) }}", "must end in '| shquote'"),
        ("echo {{ event.host | shquote ~ ';ls' }}", "must end in '| shquote'"),
        (f"cat <<EOF\nx\nEOF\necho {VALUE}", "here-document"),
        (f"echo `date` {VALUE}", "backtick"),
        (f"echo \\\n{VALUE}", "line continuation"),
        (f"echo 'open {VALUE}", "No closing quotation"),
        ("{% filter upper %}{{ event.host | shquote }}{% endfilter %}", "blocks are not"),
        ("echo {{ event.host", "syntax error"),
    ],
)
def test_unquoted_values_and_unvouched_constructs_are_refused(template: str, why: str) -> None:
    """Values not ending in `| shquote`, and any construct in which a shell reads quotes
    unlike `shlex`, even away from the value."""
    assert why in _refusal(template)


@pytest.mark.parametrize(
    ("template", "why", "payload"),
    [
        (f"cat <<EOF\n{VALUE}\nEOF", "here-document", "$(touch pwned)"),
        (f'echo "$( echo \')\' " {VALUE} ")"', "'$('", "$(touch pwned)"),
        (f'echo "${{x:-" {VALUE} "}}"', "'${'", "$(touch pwned)"),
        (f"echo $(( {VALUE} ))", "'$('", "$(touch pwned)"),
        (f"(( {VALUE} ))", "'(('", "$(touch pwned)"),
        (f"echo $[ {VALUE} ]", "'$['", "$(touch pwned)"),
        (f"[[ {VALUE} -eq 1 ]]", "'[['", "x[$(touch pwned)]"),
        (f"echo $'\\'' {VALUE} '", "$'…'", "\ntouch pwned\n"),
    ],
)
def test_each_refused_construct_would_run_a_value(template: str, why: str, payload: str) -> None:
    """Every construct the check refuses around a whole-word value is one where a shell
    would run the value (shown by rendering anyway): the refusals are needed, not just safe."""
    assert _runs_a_payload(template, payload)
    assert why in _refusal(template)


ALIAS = (
    "shopt -s expand_aliases 2>/dev/null; alias e='echo \"'\ne {{ event.labels.v | shquote }} # \""
)
SUBSCRIPT = "x[$(touch pwned)]"


@pytest.mark.parametrize(
    ("template", "payload", "why"),
    [
        (ALIAS, "x$(touch pwned)", "cannot use `shopt`"),
        (ALIAS.replace("shopt -s expand_aliases 2>/dev/null; ", ""), "x$(touch pwned)", "`alias`"),
        (
            "a=alias; $a e='echo \"'\ne {{ event.labels.v | shquote }} # \"",
            "x$(touch pwned)",
            "'$a' is not a plain word",
        ),
        (
            'eval "al"ias e=\\\'echo \\"\\\'\ne {{ event.labels.v | shquote }} # "',
            "x$(touch pwned)",
            "`eval`",
        ),
        (f"echo hi | read {VALUE}", SUBSCRIPT, "`read`"),
        (f"printf -v {VALUE} x", SUBSCRIPT, "`printf` without a literal format"),
        (f"test -v {VALUE}", SUBSCRIPT, "`test`"),
        (f"[ -v {VALUE} ]", SUBSCRIPT, "`[`"),
        (f"let {VALUE}", SUBSCRIPT, "`let`"),
        (f"compgen -W {VALUE} x", SUBSCRIPT, "`compgen`"),
        (f"sleep 0 & wait -p {VALUE} $!", SUBSCRIPT, "`wait`"),
        (f"sleep 1 & jobs -x {VALUE} pwned", "touch", "`jobs`"),
        (f"echo hi >&{VALUE}", "x$(touch pwned)", "not of '>&'"),
        (f"echo hi >& {VALUE}", "x$(touch pwned)", "not of '>&'"),
        (
            "BASH_ALIASES='echo \"'\n0 {{ event.labels.v | shquote }} # \"",
            "x$(touch pwned)",
            "cannot assign BASH_ALIASES",
        ),
        ("BASH_CMDS=/bin/sh\n0 -c {{ event.labels.v | shquote }}", "touch pwned", "BASH_CMDS"),
        ("hash -p /bin/sh ls\nls -c {{ event.labels.v | shquote }}", "touch pwned", "`hash`"),
    ],
)
def test_what_reads_later_text_or_its_arguments_as_code_is_refused(
    template: str, payload: str, why: str
) -> None:
    """An alias (however it is defined) and the builtins that evaluate a name, arithmetic or
    code, and bash's `>&word`: each ran the value past the old check (shown by rendering
    anyway), and each is now refused."""
    assert _runs_a_payload(template, payload)
    assert why in _refusal(template), _refusal(template)


@pytest.mark.parametrize(
    ("template", "why"),
    [
        (f"unalias -a; echo {VALUE}", "`unalias`"),
        (f"set -o posix; echo {VALUE}", "`set` except"),
        (f"set -- {VALUE}", "`set` except"),
        (f"set -eo posix; echo {VALUE}", "`set` except"),
        (f"%1 {VALUE}", "'%1' is not a plain word"),
        (f"enable -n echo; echo {VALUE}", "`enable`"),
        (f"source ./x; echo {VALUE}", "`source`"),
        (f". ./x; echo {VALUE}", "`.`"),
        (f"exec {VALUE}", "`exec`"),
        (f"trap 'echo' EXIT; echo {VALUE}", "`trap`"),
        (f"command echo {VALUE}", "`command`"),
        (f"builtin echo {VALUE}", "`builtin`"),
        (f'f() {{ declare "$1"; }}; f {VALUE}', "`declare`"),
        (f"typeset {VALUE}", "`typeset`"),
        (f"f() {{ local {VALUE}; }}", "`local`"),
        (f"export {VALUE}", "`export`"),
        (f"readonly {VALUE}", "`readonly`"),
        (f"unset {VALUE}", "`unset`"),
        (f"mapfile {VALUE}", "`mapfile`"),
        (f"readarray {VALUE}", "`readarray`"),
        (f"getopts a {VALUE}", "`getopts`"),
        (f"fc -s; echo {VALUE}", "`fc`"),
        (f"time echo {VALUE}", "`time`"),
        (f"function f {{ echo {VALUE}; }}", "`function`"),
        (f"coproc echo {VALUE}", "`coproc`"),
        (f"for x do eval x; done; echo {VALUE}", "`eval`"),
        (f"for BASH_ALIASES in x; do :; done; echo {VALUE}", "BASH_ALIASES"),
        (f"BASH_COMPAT=31 echo {VALUE}", "BASH_COMPAT"),
        (f'"echo" {VALUE}', "'\"echo\"' is not a plain word"),
        (f"e\\cho {VALUE}", "is not a plain word"),
        (f"$cmd {VALUE}", "'$cmd' is not a plain word"),
        (f"{VALUE} --version", "cannot be a command's name"),
        (f"x=1 {VALUE}", "cannot be a command's name"),
        (f"kill {VALUE}", "not of 'kill'"),
        (f"printf {VALUE} x", "`printf` without a literal format"),
        (f"printf -- '%s' {VALUE}", "`printf` without a literal format"),
        (f"for x in {VALUE}; do :; done", "not of 'for'"),
        (f"case {VALUE} in *) ;; esac", "not of 'case'"),
        (f"echo <&{VALUE}", "not of '<&'"),
        (f"echo &>{VALUE}", "not of '&>'"),
        (f"echo a#b {VALUE}", "not split the same way"),
    ],
)
def test_every_command_that_is_not_plain_data_is_refused(template: str, why: str) -> None:
    """The rest of the list, refused by the same allow-list: in a script holding a value,
    each command is named plainly, none reads code, names or arithmetic, and a value is
    only an argument of an external program or of echo, printf, true, false, : or cd."""
    assert why in _refusal(template), _refusal(template)


@pytest.mark.parametrize(
    "template",
    [
        "systemctl restart app",
        "echo `hostname` $(date) ${HOME}",  # no values: nothing to judge
        f"echo {VALUE}",
        f"du -sh -- {VALUE} | sort -h >{VALUE};echo done",
        f"echo 'literal' {VALUE} \"lit $HOME\" # a comment\nls -- {VALUE} 2>/dev/null",
        f"{{# why #}}echo {VALUE}&&echo {VALUE}\n",
        f"set -euo pipefail; set +e -u\nprintf '%s\\n' {VALUE} | /bin/cat >>/dev/null; true {VALUE}",
        f'for f in a b; do echo "$f" {VALUE}; done; if ! false; then : {VALUE}; fi',
        f"cd /tmp && {{ echo {VALUE} <{VALUE}; }} 2>&1 | tr a b",
    ],
)
def test_whole_word_values_are_accepted_and_never_run(template: str) -> None:
    """Values standing as whole words pass, and no payload they carry ever runs."""
    assert _accepts(template)
    for payload in PAYLOADS:
        assert not _runs_a_payload(template, payload), payload


# Command names: data builtins, an external program, reserved words, and the builtins and
# aliases that read later text or their arguments as code, names or arithmetic.
_SAFE_COMMANDS = st.sampled_from(
    ["echo", "printf '%s\\n'", "true", ":", "x=1;", "! true", "{", "cat", "e", "ls --", "0"]
)
_RISKY_COMMANDS = st.sampled_from([
    "shopt -s expand_aliases;", "alias e='echo \"';", "alias e='echo \"'\n", "a=alias; $a e='echo \"'\n",
    "eval", "command", "builtin", "read", "printf -v", "test -v", "[ -v", "let", "declare",
    "typeset", "local", "export", "readonly", "unset", "mapfile", "readarray", "getopts a",
    "compgen -W", "wait -p", "sleep 0 & jobs -x", "set -o posix;", "time", "for x in",
    "case", "echo hi >&", "exec", "trap", "\"echo\"", "$x", "kill", "printf",
])  # fmt: skip
_COMMANDS = st.one_of(_SAFE_COMMANDS, _SAFE_COMMANDS, _SAFE_COMMANDS, _RISKY_COMMANDS)
# Arguments: plain words mostly, so that many scripts pass; the rest is what breaks them,
# including a value written right against quotes, a comment, an escape or other text.
_PLAIN = st.sampled_from(["x", "-n", "'a b'", '"c $HOME d"', ">/dev/null", "2>&1", VALUE])
_BREAKERS = st.sampled_from([
    "#", "#", "#", "# x", "'", '"', "\\", "$", "(", ")", "}", "$(", 'echo "$(', "`", "<<EOF", "<<-EOF\n",
    "EOF", "${x:-", "$((", "{# note #}", f'"{VALUE}"', f'"{VALUE}"', f"'{VALUE}'", f"\\{VALUE}",
    f"#{VALUE}", f"x{VALUE}", f"${VALUE}", "{{- event.labels.v | shquote -}}",
    "{% if event.labels.v %}", "{% else %}", "{% endif %}", ">&", "<&", '# "', "]", "do", "in",
])  # fmt: skip
_ARGS = st.lists(
    st.tuples(st.one_of(_PLAIN, _PLAIN, _BREAKERS), st.sampled_from([" ", " ", " ", ""])),
    max_size=5,
).map(lambda args: "".join(arg + gap for arg, gap in args))
_LINES = st.lists(
    st.tuples(_COMMANDS, _ARGS, st.sampled_from(["\n", "\n", " ; ", " | ", " && ", " &\n"])),
    min_size=1,
    max_size=4,
).map(lambda lines: "".join(f"{cmd} {args}{end}" for cmd, args, end in lines))
# And lines of whole words only, so that the command names decide.
_WORDS = st.lists(st.tuples(_PLAIN, st.sampled_from([" ", " ", " ", ""])), max_size=4).map(
    lambda args: "".join(arg + gap for arg, gap in args)
)
_SIMPLE_LINES = st.lists(
    st.tuples(_COMMANDS, _WORDS, st.sampled_from(["\n", " ; ", " | ", " && "])),
    min_size=1,
    max_size=4,
).map(lambda lines: "".join(f"{cmd} {args}{end}" for cmd, args, end in lines))
# An alias that opens a quote, for a later `e` to leave a value in, closed by a tail.
_PRELUDES = st.sampled_from([
    "alias e='echo \"'\n", "shopt -s expand_aliases; alias e='echo \"'\n",
    "a=alias; $a e='echo \"'\n", "eval \"alias e='echo \\\"'\"\n", "BASH_ALIASES='echo \"'\n",
])  # fmt: skip
_TAILS = st.sampled_from(["", '# "', "x"])
# Every script holds at least one value, somewhere among its lines.
_TEMPLATES = st.tuples(_LINES, st.sampled_from(["echo ", "echo x", ""]), _LINES).map(
    lambda t: f"{t[0]}{t[1]}{VALUE} {t[2]}"
)
_COMMAND_TEMPLATES = st.tuples(
    st.tuples(st.one_of(st.just(""), st.just(""), _PRELUDES), _SIMPLE_LINES).map("".join),
    _COMMANDS.map(lambda cmd: cmd + " "),
    st.tuples(_TAILS, _SIMPLE_LINES).map("\n".join),
).map(lambda t: f"{t[0]}{t[1]}{VALUE} {t[2]}")
_NOISE = st.text(alphabet="'\"`$();|&#\n\\ ab", max_size=4)
# Several payloads in one value, so that it escapes whichever context it lands in.
_VALUES = st.tuples(_NOISE, st.lists(st.sampled_from(PAYLOADS), min_size=1, max_size=4)).map(
    lambda t: t[0] + "".join(t[1])
)


@pytest.mark.skipif(not SHELLS, reason="needs dash or bash")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(template=_TEMPLATES, value=_VALUES)
def test_no_accepted_template_ever_runs_a_value(template: str, value: str) -> None:
    """Property: random scripts of words, quotes, comments, operators, substitutions,
    here-documents, escapes, blocks and values; whatever the check accepts, rendered with
    a hostile value and run under real dash and bash, never runs the value."""
    if _accepts(template):
        event("accepted: run")
        assert not _runs_a_payload(template, value), (template, value)


@pytest.mark.skipif(not SHELLS, reason="needs dash or bash")
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(template=_COMMAND_TEMPLATES, value=_VALUES)
def test_no_accepted_command_ever_evaluates_a_value(template: str, value: str) -> None:
    """Property: random lines of whole words under random command names (echo, programs,
    an alias `e` defined by alias, by `$a` or by eval, and the builtins that read a name,
    arithmetic or code); whatever the check accepts, run under dash, bash and bash as sh,
    never runs the value."""
    if _accepts(template):
        event("accepted: run")
        assert not _runs_a_payload(template, value), (template, value)
