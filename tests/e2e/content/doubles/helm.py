#!/usr/bin/python3
# TEST DOUBLE of helm for the airgap-bundler e2e rig -- NOT the real helm (no helm binary can be had
# on the test machine). Answers `helm version` and `--help`, records every call as a JSON line in
# /var/log/helm-double.log, and refuses everything else with a clear message.
import json
import os
import sys
import time

VERSION = "@HELM_VERSION@"


def main(argv: list) -> int:
    try:
        os.makedirs("/var/log", exist_ok=True)
        with open("/var/log/helm-double.log", "a") as f:
            f.write(json.dumps({"argv": argv, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    except OSError:
        pass
    if not argv or argv[0] in ("help", "--help", "-h"):
        print("helm -- TEST DOUBLE (airgap-bundler e2e), not the real helm. Knows: version, --help.")
        return 0
    if argv[0] == "version":
        short = "--short" in argv
        print(f"v{VERSION}+gtestdouble" if short else
              f'version.BuildInfo{{Version:"v{VERSION}", GitCommit:"test-double", GoVersion:"none"}}')
        return 0
    sys.stderr.write("Error: the helm TEST DOUBLE does not implement {!r}\n".format(" ".join(argv)))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
