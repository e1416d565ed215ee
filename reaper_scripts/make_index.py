"""Writes reaper_scripts/index.xml (the ReaPack index) from the scripts' headers.

    python reaper_scripts/make_index.py           # rewrite index.xml
    python reaper_scripts/make_index.py --check   # exit 1 if index.xml or a header is stale

Each ``StepEdit_*.lua`` is one package of category "Items Editing"; its header must have
@description, @author, @version, @changelog and @about. The library @provides ``[nomain] .``
and its modules, ``[nomain] StepEdit/*.lua`` (a glob, expanded as reapack-index does, sorted);
ReaPack installs each module at that path under the category folder, next to the library,
and a module starts with ``-- @noindex`` so that reapack-index does not take it for a
package. A header with @metapackage is installed only under the names its
``[main] . > StepEdit_<Action>.lua`` lines give (one action per name, as reapack-index writes
them: a ``<source main="main" file="...">`` each). Set REPOSITORY_URL to where the repository
is published; ReaPack downloads each file from
``<REPOSITORY_URL>/raw/<BRANCH>/reaper_scripts/<path>``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

REPOSITORY_URL = "https://github.com/stepedit/stepedit"
BRANCH = "main"
INDEX_NAME = "StepEdit"
CATEGORY = "Items Editing"
HERE = Path(__file__).resolve().parent
REQUIRED_TAGS = ("description", "author", "version", "changelog", "about")
LIBRARY = "StepEdit_lib.lua"
MODULE = re.compile(r"StepEdit/[a-z_]+\.lua")

_TAG = re.compile(r"^--\s*@(\w+)\s*(.*)$")
_CONTINUATION = re.compile(r"^--(\s{2,}|\s*$)(.*)$")
_PROVIDES = re.compile(
    r"^(?:\[\s*(?P<options>[^\]]*?)\s*\]\s*)?(?P<pattern>.+?)"
    r"(?:\s*>\s*(?P<target>.+?))?$"
)


class HeaderError(ValueError):
    """A script header misses a tag ReaPack needs or has a malformed value."""


@dataclass(frozen=True)
class Source:
    """One file ReaPack installs from a package: ``path`` (relative to the scripts folder)
    under ``file`` (None: its own name), registered in the Action List when ``main``."""

    file: str | None
    main: bool
    path: str


@dataclass
class Package:
    """One script and the ReaPack tags of its header."""

    path: Path
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def metapackage(self) -> bool:
        return self.tags.get("metapackage", "false").lower() in ("", "true")

    @property
    def sources(self) -> list[Source]:
        """What reapack-index derives from @provides: ``.`` (this file, maybe under another
        name) or ``[nomain] <glob>`` (files of the library, installed at their paths)."""
        lines = [line.strip() for line in self.tags.get("provides", "").splitlines()]
        found = []
        for line in filter(None, lines):
            match = _PROVIDES.match(line)
            options = (match.group("options") or "").split() if match else []
            pattern = match.group("pattern") if match else ""
            if match and options == ["nomain"] and pattern != "." and not match.group("target"):
                found += self._files(pattern)
                continue
            if not match or pattern != "." or not set(options) <= {"main", "nomain"}:
                raise HeaderError(
                    f"{self.path.name}: unsupported @provides line {line!r}; "
                    "use '[main] . > <Action>.lua', '[nomain] .' or "
                    "'[nomain] <files>'"
                )
            main = "main" in options or (not options and not self.metapackage)
            target = match.group("target")
            found.append(Source(target if target != self.path.name else None, main, self.path.name))
        if not found and not self.metapackage:
            found.append(Source(None, True, self.path.name))
        return found

    def _files(self, pattern: str) -> list[Source]:
        folder = self.path.parent
        paths = sorted(
            p.relative_to(folder).as_posix() for p in folder.glob(pattern) if p.is_file()
        )
        if not paths:  # reapack-index: "file not found"
            raise HeaderError(f"{self.path.name}: @provides {pattern!r} matches no file")
        return [Source(path, False, path) for path in paths]

    @property
    def installed(self) -> list[str]:
        """The files ReaPack installs, relative to the category folder."""
        return [source.file or self.path.name for source in self.sources]


def parse_header(path: Path) -> Package:
    """Reads the leading ``-- @tag value`` block; indented comment lines continue a tag."""
    package, current = Package(path), ""
    for line in path.read_text(encoding="utf-8").splitlines():
        tag = _TAG.match(line)
        if tag:
            current = tag.group(1).lower()
            package.tags[current] = tag.group(2).strip()
            continue
        more = _CONTINUATION.match(line)
        if current and more and line.startswith("--"):
            package.tags[current] += "\n" + more.group(2)
            continue
        break
    package.tags = {tag: value.strip() for tag, value in package.tags.items()}
    return package


def check_header(package: Package) -> None:
    """Raises HeaderError naming the file and what is missing or malformed."""
    name = package.path.name
    missing = [tag for tag in REQUIRED_TAGS if not package.tags.get(tag)]
    if missing:
        raise HeaderError(f"{name}: missing @{', @'.join(missing)}")
    version = package.tags["version"]
    if not re.fullmatch(r"\d+(\.\d+){0,3}", version) or any(
        int(part) > 65535 for part in version.split(".")
    ):
        raise HeaderError(f"{name}: @version must be numeric segments <= 65535, got {version!r}")
    sources = package.sources
    if name == LIBRARY and Source(None, False, name) not in sources:
        raise HeaderError(f"{name}: the library must declare '@provides [nomain] .'")
    if package.metapackage and not any(source.main for source in sources):
        raise HeaderError(f"{name}: a @metapackage must @provides '[main] . > <Action>.lua' lines")
    for source in sources:
        file = source.file or name
        if source.path == name and not re.fullmatch(r"StepEdit_[^/\\]+\.lua", file):
            raise HeaderError(f"{name}: installed name {file!r} is not StepEdit_<Action>.lua")
        if source.path != name:
            if name != LIBRARY or not MODULE.fullmatch(source.path):
                raise HeaderError(
                    f"{name}: {source.path!r} is not a library module "
                    "(StepEdit/<module>.lua, provided by the library)"
                )
            first = (package.path.parent / source.path).read_text(encoding="utf-8")
            if not first.startswith("-- @noindex\n"):
                raise HeaderError(
                    f"{source.path}: a library module must start with "
                    "'-- @noindex' (reapack-index would index it as a package)"
                )


def packages(folder: Path = HERE) -> list[Package]:
    found = [parse_header(path) for path in sorted(folder.glob("StepEdit_*.lua"))]
    owner: dict[str, str] = {}
    for package in found:
        check_header(package)
        for file in package.installed:
            if file in owner:  # reapack-index refuses such conflicts too
                raise HeaderError(
                    f"{package.path.name}: {file!r} is already installed by {owner[file]}"
                )
            owner[file] = package.path.name
    return found


def rtf(markdown: str) -> str:
    """The @about text as the small RTF document ReaPack shows in its about dialog."""

    def text(s: str) -> str:
        s = s.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
        return "".join(
            c if ord(c) < 128 else f"\\u{ord(c) if ord(c) < 32768 else ord(c) - 65536}?" for c in s
        )

    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", markdown) if p.strip()]
    body = []
    for paragraph in paragraphs:
        lines = [line.strip() for line in paragraph.splitlines()]
        heading = re.match(r"^#+\s*(.*)$", " ".join(lines))
        if heading:
            body.append(f"{{\\b {text(heading.group(1))}}}\\par")
            continue
        items: list[str] = []  # a "- " line starts a list item; other lines continue one
        for line in lines:
            if line.startswith("- ") or not items:
                items.append("\u2022 " + line[2:] if line.startswith("- ") else line)
            else:
                items[-1] += " " + line
        body += [f"{text(item)}\\par" for item in items]
    return (
        "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 \\fswiss Helvetica;}}\\f0\\fs20\n"
        + "\n".join(body)
        + "\n}"
    )


def source_url(path: str) -> str:
    return f"{REPOSITORY_URL}/raw/{BRANCH}/reaper_scripts/{quote(path)}"


def source_line(source: Source) -> str:
    """A ``<source>`` as reapack-index writes it; ``file`` names where ReaPack installs it
    (an alias's copy, or a module's path) when that is not the package's own name."""
    main = ' main="main"' if source.main else ""
    file = f" file={quoteattr(source.file)}" if source.file else ""
    return f"        <source{main}{file}>{escape(source_url(source.path))}</source>"


def cdata(s: str) -> str:
    return "<![CDATA[" + s.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_index(found: list[Package]) -> str:
    """The index.xml text (deterministic: no commit hash or time, so it can be checked)."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<index version="1" name={quoteattr(INDEX_NAME)}>',
        f"  <category name={quoteattr(CATEGORY)}>",
    ]
    for package in found:
        tags = package.tags
        lines += [
            f'    <reapack name={quoteattr(package.path.name)} type="script"'
            f" desc={quoteattr(tags['description'])}>",
            "      <metadata>",
            f"        <description>{cdata(rtf(tags['about']))}</description>",
            "      </metadata>",
            f"      <version name={quoteattr(tags['version'])} author={quoteattr(tags['author'])}>",
            f"        <changelog>{cdata(tags['changelog'])}</changelog>",
            *(source_line(source) for source in package.sources),
            "      </version>",
            "    </reapack>",
        ]
    readme = HERE / "README.md"
    about = readme.read_text(encoding="utf-8") if readme.exists() else INDEX_NAME
    lines += [
        "  </category>",
        "  <metadata>",
        f"    <description>{cdata(rtf(about))}</description>",
        f'    <link rel="website">{escape(REPOSITORY_URL)}</link>',
        "  </metadata>",
        "</index>",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if index.xml is stale")
    args = parser.parse_args(argv)
    try:
        text = render_index(packages())
    except HeaderError as e:
        print(f"make_index: {e}", file=sys.stderr)
        return 1
    index = HERE / "index.xml"
    if args.check:
        if not index.exists() or index.read_text(encoding="utf-8") != text:
            print(
                "make_index: reaper_scripts/index.xml is out of date with the script headers;"
                " run python reaper_scripts/make_index.py",
                file=sys.stderr,
            )
            return 1
        return 0
    index.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
