"""The upgrade operation: its phases (the step phases are added once the path is known, from the cluster's
state) and the cluster record (the new bundle and version are recorded only when the upgrade finished)."""

from installer.errors import InstallerError
from installer.operations import Operation
from installer.record import ClusterRecord
from installer.upgrade import path as P
from installer.upgrade import phases as U
from installer.upgrade.preflight import UpgradePreflight


def step_phases(ctx, max_unavailable, drain_timeout):
    """The phases after the preflight, for ctx.upgrade_steps."""
    if not ctx.upgrade_steps:
        return []
    out = [U.StageRepo(), U.PushImages()]
    cps = [h for h in ctx.inventory.control_planes if h is not ctx.first_cp]
    workers = list(ctx.inventory.workers)
    for i, v in enumerate(ctx.upgrade_steps):
        vt = P.text(v)
        out.append(U.PrePull(v))
        out.append(U.UpgradeNode(v, [ctx.first_cp], first=True, drain_timeout=drain_timeout,
                                 title="upgrade the first control plane to %s (kubeadm upgrade apply)" % vt))
        if cps:
            out.append(U.UpgradeNode(v, cps, drain_timeout=drain_timeout,
                                     title="upgrade the other control planes to %s, one at a time" % vt))
        if i == len(ctx.upgrade_steps) - 1:
            out.append(U.CNIIfChanged())
        for b in range(0, len(workers), max_unavailable):
            batch = workers[b:b + max_unavailable]
            phase = U.UpgradeNode(v, batch, drain_timeout=drain_timeout,
                                  title="upgrade workers %s to %s" % (", ".join(h.label for h in batch), vt))
            phase.parallel = True
            out.append(phase)
    return out


def run(runner, max_unavailable=1, drain_timeout=300, dry_run=False):
    ctx = runner.ctx
    if ctx.first_cp.label in ctx.skipped:
        raise InstallerError("the first control plane %s cannot be skipped: the upgrade runs kubeadm upgrade apply "
                             "there" % ctx.first_cp.label, hint="Bring it back, then run the upgrade. Nothing was "
                                                                "changed")
    previous = runner.previous_record or {}
    ctx.upgrade_id = None
    ctx.upgrade_reboot_later = []
    op = Operation("upgrade", [], dry_run=dry_run, media=False, check_bundle=False)

    def extend(c):
        c.upgrade_id = runner.operation_id or "plan"
        op.phases.extend(step_phases(c, max_unavailable, drain_timeout))

    op.phases.append(UpgradePreflight(previous.get("kubernetes"), extend))
    if dry_run:
        changed = runner.execute(op)
        total = sum(len(v) for v in changed.values())
        runner.out.say("plan upgrade: %d change(s)" % total if total else "plan upgrade: no changes")
        return total
    record = ClusterRecord(previous)
    before = {"bundle": previous.get("bundle"), "kubernetes": previous.get("kubernetes")}

    def start(r):
        r.start("upgrade %s -> %s" % (before["kubernetes"] or P.text(ctx.upgrade_current), ctx.bundle.k8s_version), ctx,
                operation_id=runner.operation_id)
        # the new bundle becomes the cluster's only when the upgrade finished
        r.data["upgrading"] = {"bundle": r.data["bundle"], "kubernetes": r.data["kubernetes"]}
        r.data.update(before)

    def failed(e):
        e.hint = "%s. Every step checks the cluster's state: run ./install.py upgrade again to resume (kubeadm " \
                 "upgrade apply is not repeated)" % (e.hint or "Fix the cause").rstrip(".")
        return "failed: %s" % e.message

    changed = runner.execute_recorded(op, record, start, on_failure=failed)
    if not ctx.upgrade_steps:
        record.data.pop("upgrading", None)
        runner.out.say("upgrade: nothing to do")
        record.finish("ok (nothing to do)")
        runner.write_record(record)
        return 0
    record.data.update(record.data.pop("upgrading"))
    runner.finish_record(record)
    total = sum(len(v) for v in changed.values())
    for later in ctx.upgrade_reboot_later:
        runner.out.say("upgrade: %s needs a reboot and runs this installer: reboot it by hand (drain it first)"
                       % later)
    runner.out.say("upgrade: the cluster is at Kubernetes %s; %d change(s)" % (ctx.bundle.k8s_version, total))
    return total
