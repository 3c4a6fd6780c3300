#!/usr/bin/env python3
"""Checks the dynamic symbols libmandala.so exports against what the public headers mark.

    check_exports.py --nm NM --library libmandala.so --internals libmandala_internals.a
                     --include include/

The rule (docs/ARCHITECTURE.md, "The library's boundary"):

1. Nothing leaks. Every defined dynamic symbol of the shared library (nm -D --defined-only,
   demangled) belongs to a declaration that include/mandala marks MANDALA_API:
   - a member of a marked class (`class MANDALA_API Storage` exports mandala::Storage::*, and
     its typeinfo, typeinfo name and vtable), or
   - a marked function (`MANDALA_API Id content_id(...)` in namespace mandala::detail exports
     mandala::detail::content_id), friends included (they belong to the enclosing namespace).
   So the internal namespaces of src/ (mandala::store, mandala::codec, mandala::versioning, ...),
   internal classes of mandala::detail (StorageCore, FrameImpl, ...), the libraries linked in
   (sqlite3_*, PQ*, XXH*, nlohmann::, msgpack::) and instantiations of std:: templates all fail.
2. Nothing is missing. Every function the library's objects define (strong text symbols of the
   internals archive, made of the same objects) that is a member of a class the public headers
   define, or a free function directly in namespace mandala, is exported: a class or function
   of the public API compiled into the library but not marked would leave consumers unable to
   link it.
3. No mark is stale: every marked class and function has at least one exported symbol (a mark
   on something the headers define inline exports nothing and misleads).
"""

import argparse
import pathlib
import re
import subprocess
import sys

NAMESPACE = "mandala"
CLASS_PREFIXES = ("typeinfo for ", "typeinfo name for ", "vtable for ")


def strip_comments_and_strings(text):
    """The header's code with comments, string literals and preprocessor lines blanked (newlines
    kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(c)
            i += 1
    # Preprocessor lines (with their continuations: macros such as MANDALA_STRUCT hold braces).
    return re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", lambda d: "\n" * d.group(0).count("\n"), "".join(out),
                  flags=re.MULTILINE)


def header_marks(include_dir):
    """(marked classes, marked functions, classes defined) of include/mandala, each a set of
    qualified names (mandala::Storage, mandala::detail::content_id)."""
    classes, functions, defined = set(), set(), set()
    for path in sorted(pathlib.Path(include_dir, NAMESPACE).rglob("*.hpp")):
        code = strip_comments_and_strings(path.read_text())
        # Scopes: a stack of (kind, name) per open brace; namespaces give the qualification.
        stack = []
        token = re.compile(
            r"\bnamespace\s+(\w+)\s*\{"  # 1: a namespace opens
            r"|\b(?:class|struct)\s+(MANDALA_API\s+)?(\w+)\s*(?:final\s*)?(?::[^;{]*)?\{"  # 2, 3: a class definition
            r"|\bMANDALA_API\b"
            r"|[{}]")
        pos = 0
        while True:
            m = token.search(code, pos)
            if not m:
                break
            pos = m.end()
            namespaces = [name for kind, name in stack if kind == "namespace"]
            in_class = any(kind == "class" for kind, _ in stack)
            scope = "::".join(namespaces)
            if m.group(1):
                stack.append(("namespace", m.group(1)))
            elif m.group(3):
                if not in_class:
                    defined.add(f"{scope}::{m.group(3)}")
                    if m.group(2):
                        classes.add(f"{scope}::{m.group(3)}")
                stack.append(("class", m.group(3)))
            elif m.group(0) == "{":
                stack.append(("block", None))
            elif m.group(0) == "}":
                stack.pop()
            else:  # a function mark: the name before the parameter list
                decl = re.match(r"\s*([^;{]*?)(operator\s*(?:\(\)|[^\s(]+)|\w+)\s*\(", code[pos:])
                if not decl:
                    line = code.count("\n", 0, m.start()) + 1
                    sys.exit(f"{path}:{line}: MANDALA_API on something that is neither a class nor a function")
                name = re.sub(r"\s+", "", decl.group(2))
                functions.add(f"{scope}::{name}")
    return classes, functions, defined


def entity(symbol):
    """The qualified name a demangled symbol defines, split into components, without template
    arguments, ABI tags or parameters: 'mandala::Storage::flush()' -> ['mandala', 'Storage',
    'flush']; (None, symbol) for typeinfo and vtables gives the class."""
    for prefix in CLASS_PREFIXES:
        if symbol.startswith(prefix):
            return "class", split_name(symbol[len(prefix):])
    return "function", split_name(symbol)


def split_name(name):
    parts, depth, current, i = [], 0, "", 0
    while i < len(name):
        if depth == 0 and name.startswith("operator", i) and (not current or current.endswith("::") or current == ""):
            # an operator's name runs to its parameter list: operator(), operator<<, operator==
            m = re.match(r"operator\s*(\(\)|[^\s(]+)", name[i:])
            parts.append("operator" + m.group(1))
            return parts
        c = name[i]
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0 and c == "(":
            break
        elif depth == 0 and name.startswith("::", i):
            parts.append(current)
            current = ""
            i += 2
            continue
        elif depth == 0 and c == " " and not current:
            pass
        elif depth == 0:
            current += c
        i += 1
    if current:
        parts.append(current)
    return [re.sub(r"\[abi:\w+\]", "", p) for p in parts]


def nm(tool, *args):
    result = subprocess.run([tool, *args], check=True, capture_output=True, text=True)
    symbols = []
    for line in result.stdout.splitlines():
        # "<address> <type> <name>"; archives also list "<member>:" lines and blank lines
        m = re.match(r"^[0-9a-fA-F]*\s+([A-Za-z])\s+(.*)$", line)
        if m:
            symbols.append((m.group(1), m.group(2)))
    return symbols


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nm", default="nm")
    parser.add_argument("--library", required=True)
    parser.add_argument("--internals", help="the static archive of the same objects (rule 2)")
    parser.add_argument("--include", required=True)
    args = parser.parse_args()

    classes, functions, defined = header_marks(args.include)
    if not classes or not functions:
        sys.exit(f"no MANDALA_API marks found under {args.include}")

    exported = nm(args.nm, "-D", "--defined-only", "--demangle", args.library)
    problems = []
    used = set()
    for _, symbol in exported:
        kind, parts = entity(symbol)
        qualified = ["::".join(parts[:k]) for k in range(1, len(parts) + 1)]
        owner = next((q for q in qualified if q in classes), None)
        if kind == "class":
            ok = "::".join(parts) in classes
            owner = "::".join(parts)
        elif owner is None:
            owner = "::".join(parts)
            ok = owner in functions
        else:
            ok = True
        if ok:
            used.add(owner)
        else:
            problems.append(f"exported but not marked MANDALA_API in include/{NAMESPACE}: {symbol}")

    if args.internals:
        exported_names = {symbol for _, symbol in exported}
        for type_, symbol in nm(args.nm, "--defined-only", "--demangle", args.internals):
            if type_ != "T" or symbol in exported_names:
                continue
            _, parts = entity(symbol)
            if parts[0] != NAMESPACE:
                continue
            scope = ["::".join(parts[:k]) for k in range(2, len(parts))]
            if len(parts) == 2 or any(s in defined for s in scope):
                problems.append(f"defined by the library for the public API but not exported (mark it MANDALA_API): {symbol}")

    for stale in sorted((classes | functions) - used):
        problems.append(f"marked MANDALA_API but the library exports nothing of it: {stale}")

    print(f"{len(exported)} symbols exported, {len(classes)} classes and {len(functions)} functions marked")
    if problems:
        print("\n".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
