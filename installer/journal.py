"""Per-host state: what the installer did, so a re-run resumes and `reset` puts the host back.

Lives on each host at /var/lib/airgap-installer/journal.json (root-only), next to backup/ with the
original copies of every file the installer changed. Logs of each run are under /var/log/airgap-installer/
on the host running install.py.
"""

import json
import time

from installer.ssh import quote

STATE_DIR = "/var/lib/airgap-installer"
BACKUP_DIR = STATE_DIR + "/backup"
JOURNAL = STATE_DIR + "/journal.json"
LOG_DIR = "/var/log/airgap-installer"


class Journal(object):
    def __init__(self, conn, data=None):
        self.conn = conn
        self.data = data or {"version": 1, "phases": {}, "files": {}, "packages": [], "undo": [],
                             "moved": {}, "restart": []}

    @classmethod
    def load(cls, conn):
        raw = conn.read_file(JOURNAL)
        if raw is None:
            return cls(conn)
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:
            data = None
        j = cls(conn, data)
        for k, v in (("phases", {}), ("files", {}), ("packages", []), ("undo", []), ("moved", {}),
                     ("restart", [])):
            j.data.setdefault(k, v)
        return j

    def save(self):
        self.conn.write_file(JOURNAL, json.dumps(self.data, indent=1, sort_keys=True) + "\n", 0o600)

    # -- phases ---------------------------------------------------------------------------------------
    def phase_done(self, name):
        return self.data["phases"].get(name, {}).get("status") == "done"

    def mark(self, name, status, changes=None):
        entry = self.data["phases"].setdefault(name, {})
        entry["status"] = status
        entry["at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        if changes is not None:
            entry["last_changes"] = list(changes)
        self.save()

    # -- files ----------------------------------------------------------------------------------------
    def remember_file(self, path):
        """Before the first change to `path`, keep its original (or note that we are creating it)."""
        if path in self.data["files"]:
            return
        conn = self.conn
        if conn.exists(path):
            backup = BACKUP_DIR + path
            conn.check("mkdir -p %s && cp -a %s %s" % (quote(conn.path(backup.rsplit("/", 1)[0])),
                                                     quote(conn.path(path)), quote(conn.path(backup))),
                       "backing up %s" % path)
            self.data["files"][path] = {"backup": backup}
        else:
            self.data["files"][path] = {"created": True}
        self.save()

    def move_away(self, path):
        """Move a file into the backup (the seed's 'back up /etc/yum.repos.d'); reset moves it back."""
        conn = self.conn
        backup = BACKUP_DIR + "/moved" + path
        conn.check("mkdir -p %s && mv -f %s %s" % (quote(conn.path(backup.rsplit("/", 1)[0])),
                                                 quote(conn.path(path)), quote(conn.path(backup))),
                   "moving %s aside" % path)
        self.data["moved"][path] = backup
        self.save()

    # -- packages and undo commands --------------------------------------------------------------------
    def add_packages(self, names):
        for n in names:
            if n not in self.data["packages"]:
                self.data["packages"].append(n)
        self.save()

    def add_restart(self, service):
        """A service that ran before we touched it: reset restarts it once its files are restored."""
        self.data.setdefault("restart", [])
        if service not in self.data["restart"]:
            self.data["restart"].append(service)
            self.save()

    def first_touch_of_service(self, service, active, enabled):
        """The first time the installer touches `service`, remember how reset leaves it: restart what ran,
        stop what did not, disable what was not enabled."""
        seen = self.data.setdefault("seen_service", {})
        if seen.get(service):
            return
        seen[service] = True
        name = quote(service)
        if active:
            self.add_restart(service)
        else:
            self.add_undo("systemctl stop %s" % name)
        if not enabled:
            self.add_undo("systemctl disable %s" % name)
        self.save()

    # -- the registry's content -------------------------------------------------------------------------
    def pushed(self):
        """The bundle id whose images are in the registry (None before the first fill)."""
        return self.data.get("pushed")

    def set_pushed(self, bundle_id, stats):
        self.data["pushed"] = bundle_id
        self.data["push_stats"] = stats
        self.save()

    def add_undo(self, cmd):
        if cmd not in self.data["undo"]:
            self.data["undo"].append(cmd)
            self.save()
