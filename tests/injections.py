"""Event values that would be shell syntax, options or globs if they ever reached a shell."""

INJECTIONS = [
    "; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "a' ; touch {marker} ; '",
    'a" ; touch {marker} ; "',
    "x\ntouch {marker}\n",
    "&& touch {marker}",
    "| touch {marker}",
    "> {marker}",
    "${{IFS}}touch${{IFS}}{marker}",
    "--help",
    "-rf",
    "--output={marker}",
    "*",
    "~",
    "",
    "  spaced  out  ",
    "\\",
    "'\"'\"'",
    "é 日本 🚀 \t tab",
]
