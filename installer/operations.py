"""Operations: a name and the list of phases the runner runs for it (install, plan, status, reset; day-2
commands add theirs here)."""

from installer.phases import install_phases


class Operation(object):
    """`dry_run`: phases only say what they would change; `media`: the OS media is described first (the
    repo phase serves it); `check_bundle`: the bundle is checked against SHA256SUMS before connecting;
    `locks`: it changes hosts, so it holds the host lock while it runs."""

    def __init__(self, name, phases, dry_run=False, media=True, check_bundle=True, locks=None):
        self.name = name
        self.locks = (not dry_run) if locks is None else locks  # takes the host lock (installer.lock)
        self.phases = list(phases)
        self.dry_run = dry_run
        self.media = media
        self.check_bundle = check_bundle

    def __repr__(self):
        return "<Operation %s: %s>" % (self.name, ", ".join(p.name for p in self.phases))


def install():
    return Operation("install", install_phases())


def plan():
    return Operation("plan", install_phases(), dry_run=True)


def status():
    from installer.phases.status import Status
    return Operation("status", [Status()], media=False, check_bundle=False, locks=False)


def reset():
    from installer.reset import Reset
    return Operation("reset", [Reset()], media=False, check_bundle=False)


def add_node(dry_run=False):
    from installer.addnode import add_node_phases
    return Operation("add-node", add_node_phases(), dry_run=dry_run)


def remove_node(dry_run=False):
    from installer.removenode import remove_node_phases
    return Operation("remove-node", remove_node_phases(), dry_run=dry_run, media=False, check_bundle=False)


OPERATIONS = {"install": install, "plan": plan, "status": status, "reset": reset, "add-node": add_node,
              "remove-node": remove_node}
