"""RPM License tags as SBOM license fields.

EL9 and later write SPDX expressions (`MIT AND BSD-3-Clause`); older packages use Fedora's legacy short names
(`ASL 2.0`, `GPLv2+`), which are not SPDX. An expression made only of SPDX identifiers this module knows is
used as is; anything else is kept verbatim as free text (CycloneDX license name, SPDX LicenseRef with the
original text), never guessed into an identifier it might not be.
"""

from __future__ import annotations

import re

# SPDX license list identifiers common in EL and Kubernetes packages (a subset: unknown ones are kept as text).
KNOWN_IDS = frozenset("""
0BSD AFL-2.1 AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 Artistic-1.0 Artistic-1.0-Perl Artistic-2.0
BSD-1-Clause BSD-2-Clause BSD-3-Clause BSD-4-Clause BSL-1.0 bzip2-1.0.6 CC-BY-4.0 CC-BY-SA-4.0 CC0-1.0 CDDL-1.0
curl EPL-1.0 EPL-2.0 FSFAP FSFUL FSFULLR GFDL-1.3-or-later GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later
GPL-3.0-only GPL-3.0-or-later HPND IJG ISC LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0-only
LGPL-3.0-or-later Libpng MIT MIT-0 MPL-1.1 MPL-2.0 NCSA OpenSSL PSF-2.0
Python-2.0 Ruby Sleepycat TCL Unicode-DFS-2016 Unlicense Vim W3C X11 Zlib ZPL-2.1
""".split())
EXCEPTIONS = frozenset({"Autoconf-exception-generic", "Autoconf-exception-3.0", "Bison-exception-2.2",
                        "Classpath-exception-2.0", "GCC-exception-3.1", "LLVM-exception", "OpenSSL-exception"})
_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def spdx_expression(text: str | None) -> str | None:
    """`text` when it is an SPDX expression over known identifiers (AND/OR/WITH, parentheses), else None."""
    tokens = _TOKEN.findall(text or "")
    if not tokens:
        return None
    depth, want_id, after_with = 0, True, False
    for tok in tokens:
        if tok == "(":
            if not want_id:
                return None
            depth += 1
        elif tok == ")":
            depth -= 1
            if depth < 0 or want_id:
                return None
        elif tok in ("AND", "OR", "WITH"):
            if want_id:
                return None
            want_id, after_with = True, tok == "WITH"
            continue
        else:
            if not want_id or (tok not in EXCEPTIONS if after_with else tok not in KNOWN_IDS):
                return None
            want_id = False
        after_with = False
    return " ".join(tokens).replace("( ", "(").replace(" )", ")") if depth == 0 and not want_id else None
