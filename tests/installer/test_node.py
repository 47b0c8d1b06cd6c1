"""node prepare|apply|finish: the join file (0600, checked on load, expiry), node apply's host set-up (only this
host contacted, the serving host from the file, the file's token), node finish keeping only Ready nodes."""

import json
import os
import stat
import time

import pytest

from installer import joinfile, nodeapply
from installer import record as rec
from installer.cli import main, parse
from installer.commands import node
from installer.context import Options
from installer.errors import InstallerError
from installer.inventory import Host, Inventory
from installer.output import Output
from installer.runner import Runner
from installer.ssh import Result

from .conftest import el9_facts, make_bundle

NOW = time.time()


def _join(b, expires=NOW + 3600, hosts=("10.0.0.13",)):
    data = {"state": "installed", "bundle": {"name": "k8s", "sha256": rec.bundle_sha256(b.root), "dir": b.root},
            "inventory": {"hosts": [{"address": "10.0.0.11", "role": "control_plane", "nodeName": "cp1"},
                                    {"address": "10.0.0.12", "role": "worker", "nodeName": "w1"}]},
            "options": {"media": "/mnt/media"}, "serveHost": {"address": "10.0.0.11", "name": "cp1"},
            "history": [{"operation": "install", "result": "ok"}]}
    return {"kind": joinfile.KIND, "version": 1, "created": joinfile.iso(NOW), "expires": joinfile.iso(expires),
            "record": data, "bundle": b.data, "bundleSha256": rec.bundle_sha256(b.root), "gpgkeys": ["k.gpg"],
            "token": "abcdef.0123456789abcdef", "caCertHash": "sha256:" + "a" * 64, "registryCA": "PEM\n",
            "media": {"kind": "dir", "path": "/mnt/media", "repos": ["BaseOS", "AppStream"]},
            "serveAddress": "10.0.0.11", "apiEndpoint": "10.0.0.11:6443",
            "hosts": [{"address": a, "role": "worker", "user": "root", "port": 22} for a in hosts]}


def test_parse_the_actions_and_the_plan_form():
    a = parse(["node", "apply", "--join", "/tmp/j.json"])
    assert (a.command, a.action, a.join, a.plan) == ("node", "apply", "/tmp/j.json", False)
    a = parse(["plan", "node", "apply"])
    assert (a.command, a.action, a.plan, a.join) == ("node", "apply", True, joinfile.default_path())
    a = parse(["node", "prepare", "--hosts", "10.0.0.13,10.0.0.14", "--ttl", "90m"])
    assert (a.action, a.hosts, a.ttl) == ("prepare", "10.0.0.13,10.0.0.14", "90m")
    with pytest.raises(SystemExit):
        parse(["node", "join"])


def test_join_file_written_0600_and_checked_on_load(tmp_path, bundle):
    path = joinfile.write(str(tmp_path / "j.json"), _join(bundle))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert joinfile.load(path)["token"] == "abcdef.0123456789abcdef" and not joinfile.expired(joinfile.load(path))
    assert joinfile.expired(_join(bundle, expires=NOW - 1)) and joinfile.token_id(_join(bundle)) == "abcdef"
    for text, words in (("{", "is not valid JSON"), ('{"kind": "x"}', "is not a node join file"),
                        (json.dumps({"kind": joinfile.KIND, "version": 1}), "lacks record, bundle")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(InstallerError) as e:
            joinfile.load(str(tmp_path / "bad.json"))
        assert words in e.value.message and str(tmp_path / "bad.json") in e.value.message
        assert "node prepare" in e.value.hint
    with pytest.raises(InstallerError) as e:
        joinfile.load(str(tmp_path / "missing.json"))
    assert "cannot read the join file" in e.value.message
    assert [joinfile.duration_seconds(t) for t in ("2h", "90m", "1h30m", "45s")] == [7200, 5400, 5400, 45]
    for bad in ("", "2d", "h", "-1h"):
        with pytest.raises(InstallerError):
            joinfile.duration_seconds(bad)


def test_cli_apply_with_a_bad_join_file_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "j.json").write_text("not json")
    assert main(["node", "apply", "--join", str(tmp_path / "j.json"), "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is not valid JSON" in err and "Traceback" not in err


def _apply(tmp_path, monkeypatch, join, address="10.0.0.13", bundle_dir=None):
    """node apply up to the runner: the operation and context it would run."""
    path = joinfile.write(str(tmp_path / "j.json"), join)
    seen = {}

    def execute(self, op, before_changes=None):
        seen["op"], seen["ctx"], seen["runner"] = op, self.ctx, self
        return {}

    monkeypatch.setattr(Runner, "execute", execute)
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    args = parse(["node", "apply", "--join", path, "--address", address, "--root", str(root),
                  "--bundle", bundle_dir or str(tmp_path / "kit")])
    assert node.run(args) == 0
    return seen


def test_apply_contacts_only_this_host_with_the_files_token(tmp_path, monkeypatch, bundle):
    seen = _apply(tmp_path, monkeypatch, _join(bundle))
    ctx, op = seen["ctx"], seen["op"]
    assert [p.name for p in op.phases] == ["preflight", "media_repo", "host_prep", "runtime", "packages", "join",
                                           "kubelet_up"]
    assert not op.media and not op.check_bundle and op.locks
    assert [h.label for h in ctx.reachable_hosts] == ["10.0.0.13"] and ctx.new_hosts == {"10.0.0.13"}
    me = [h for h in ctx.nodes if h.address == "10.0.0.13"][0]
    assert me.local and not any(h.local for h in ctx.all_hosts if h is not me)
    assert ctx.serve_host.address == "10.0.0.11" and ctx.repo_url == "http://10.0.0.11:8089"
    assert ctx.api_endpoint == "10.0.0.11:6443" and ctx.ca_pem == "PEM\n" and ctx.media["repos"] == ["BaseOS",
                                                                                                   "AppStream"]
    assert ctx.bundle.gpgkeys() == ["k.gpg"] and ctx.bundle.k8s_version == "1.30.4"
    assert ctx.node_name(ctx.inventory.control_planes[0]) == "cp1"  # names of the others from the record
    join = op.phases[5]
    assert join.hosts(ctx) == [me] and join.material(ctx, me) == ("abcdef.0123456789abcdef", "sha256:" + "a" * 64,
                                                                  None)
    ctx.join_file = _join(bundle, expires=NOW - 5)
    with pytest.raises(InstallerError) as e:
        join.material(ctx, me)
    assert "expired" in e.value.message and "node prepare --hosts 10.0.0.13" in e.value.hint
    ctx.connections = {}
    join.cleanup(ctx)  # the token is not node apply's to delete
    # preflight: this host's clock against the join file's creation (the serving host's clock then)
    ctx.join_file = _join(bundle)
    ctx.facts = {me.label: el9_facts(time=int(NOW) - 3600)}
    errors, _ = op.phases[0].check_cluster(ctx, ctx.facts)
    assert any("the clock of 10.0.0.13 is 3600 s behind the serving host's" in e for e in errors), errors
    ctx.facts = {me.label: el9_facts(time=int(NOW))}
    assert op.phases[0].check_cluster(ctx, ctx.facts)[0] == []


def test_apply_refuses_another_bundle_and_a_host_not_in_the_file(tmp_path, monkeypatch, bundle):
    other = make_bundle(str(tmp_path / "other"), k8s="1.30.9")
    with pytest.raises(InstallerError) as e:
        _apply(tmp_path, monkeypatch, _join(bundle), bundle_dir=other.root)
    assert "is not the installed one" in e.value.message
    _apply(tmp_path, monkeypatch, _join(bundle), bundle_dir=bundle.root)  # the installed bundle itself: fine
    with pytest.raises(InstallerError) as e:
        _apply(tmp_path, monkeypatch, _join(bundle), address="10.0.0.99")
    assert "--address 10.0.0.99 is not one of the join file's hosts (10.0.0.13)" in e.value.message


class _Nodes:
    def __init__(self, items):
        self.items = items
        self.calls = []

    def run(self, cmd, check=True, timeout=None, input=None):
        self.calls.append(cmd)
        if "get nodes" in cmd:
            return Result(cmd, 0, json.dumps({"items": self.items}), "")
        return Result(cmd, 0, "", "")


def _node(name, ip, ready):
    return {"metadata": {"name": name}, "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                                                   "conditions": [{"type": "Ready", "status": ready}]}}


def _finish_ctx(tmp_path, bundle):
    hosts = [Host("127.0.0.1", "control_plane"), Host("10.0.0.13", "worker"), Host("10.0.0.14", "worker")]
    r = Runner(bundle, Inventory(hosts, "t"), Options(), Output(root=str(tmp_path), quiet=True), root=str(tmp_path),
               skip_verify=True, local_addrs={"127.0.0.1"})
    ctx = r.ctx
    ctx.new_hosts = {"10.0.0.13", "10.0.0.14"}
    ctx.skipped = set(ctx.new_hosts)
    return ctx


def test_finish_keeps_only_the_new_hosts_that_are_ready_nodes(tmp_path, bundle):
    ctx = _finish_ctx(tmp_path, bundle)
    conn = _Nodes([_node("cp1", "127.0.0.1", "True"), _node("worker-13", "10.0.0.13", "True"),
                   _node("worker-14", "10.0.0.14", "False")])
    ctx.connections = {"127.0.0.1": conn}
    ctx.finish_token = "abcdef"
    lines = dict(nodeapply.NodesJoined().check(ctx))
    assert ctx.finish_token is None and ctx.finish_left == ["10.0.0.14"]  # kept for the host still to join
    assert lines["10.0.0.13"] == "joined as worker-13, Ready" and "not Ready" in lines["10.0.0.14"]
    assert [h.address for h in ctx.nodes] == ["127.0.0.1", "10.0.0.13"] and ctx.new_hosts == {"10.0.0.13"}
    assert ctx.node_name(ctx.nodes[1]) == "worker-13"  # the record gets the API's name
    none = _finish_ctx(tmp_path, bundle)
    none.connections = {"127.0.0.1": _Nodes([_node("cp1", "127.0.0.1", "True")])}
    with pytest.raises(InstallerError) as e:
        nodeapply.NodesJoined().check(none)
    assert "none of the new hosts (10.0.0.13, 10.0.0.14) is a Ready node" in e.value.message
    assert "the join token and file are kept" in e.value.hint
    # the token: deleted at the end of node finish, once
    ctx.finish_token = "abcdef"
    nodeapply.DeleteJoinToken().cleanup(ctx)
    nodeapply.DeleteJoinToken().cleanup(ctx)
    assert [c for c in conn.calls if "token" in c] == ["kubeadm token delete abcdef"]
    assert [p.name for p in nodeapply.finish_phases()] == ["nodes_joined", "cluster_hosts", "delete_join_token"]


def test_prepare_refuses_no_hosts_and_a_join_file_inside_the_bundle(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    assert main(["node", "prepare", "--bundle", b.root, "--root", str(tmp_path)]) == 1
    assert "node prepare: no new host given" in capsys.readouterr().err
    assert main(["node", "prepare", "--hosts", "10.0.0.13", "--ttl", "2d", "--root", str(tmp_path)]) == 1
    assert "--ttl '2d' is not a duration" in capsys.readouterr().err


def test_prepare_replaces_an_unfinished_join_file_deleting_its_token(tmp_path, bundle, capsys):
    conn = _Nodes([])
    node._supersede(conn, str(tmp_path / "none.json"), Output(root=str(tmp_path), quiet=True))
    assert conn.calls == []
    path = joinfile.write(str(tmp_path / "j.json"), _join(bundle))
    node._supersede(conn, path, Output(root=str(tmp_path)))
    assert conn.calls == ["kubeadm token delete abcdef"]
    assert "the earlier join file %s is replaced; its token abcdef is deleted" % path in capsys.readouterr().out
    (tmp_path / "j.json").write_text("garbage")
    with pytest.raises(InstallerError) as e:
        node._supersede(conn, path, Output(root=str(tmp_path), quiet=True))
    assert "does not overwrite a file it cannot read" in e.value.message


def _served(tmp_path, b):
    """A serving host (this machine, under --root) with the record of an installed 2-host cluster."""
    root = tmp_path / "root"
    os.makedirs(str(root / "etc" / "airgap-bundler"))
    data = _join(b)["record"]
    data["inventory"]["hosts"][0]["address"] = "127.0.0.1"
    (root / "etc" / "airgap-bundler" / "cluster.json").write_text(json.dumps(data))
    return root


@pytest.mark.parametrize("ready", [("10.0.0.13", "10.0.0.14"), ("10.0.0.13",)])
def test_finish_records_the_joined_hosts_and_deletes_the_token_only_when_none_is_left(tmp_path, monkeypatch, ready,
                                                                                      capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = _served(tmp_path, b)
    path = joinfile.write(str(tmp_path / "j.json"), _join(b, hosts=("10.0.0.13", "10.0.0.14")))
    written, seen = [], {}

    def execute(self, op, before_changes=None):
        ctx = self.ctx
        seen["skipped"], seen["new"] = set(ctx.skipped), set(ctx.new_hosts)
        before_changes()
        ctx.finish_left = [a for a in ("10.0.0.13", "10.0.0.14") if a not in ready]
        for a in ready:
            ctx.recorded_names[a] = "w" + a[-2:]
        if ctx.finish_left:
            ctx.finish_token = None
        ctx.inventory = Inventory([h for h in ctx.inventory.hosts if h.label not in ctx.finish_left], "t")
        ctx.new_hosts = set(ready)
        return {}

    monkeypatch.setattr(Runner, "execute", execute)
    monkeypatch.setattr(Runner, "write_record", lambda self, r, quiet=False: written.append(json.loads(r.text())))
    monkeypatch.setattr(Runner, "publish_record", lambda self, r: True)
    assert main(["node", "finish", "--join", path, "--bundle", b.root, "--root", str(root), "--skip-bundle-check"]) == 0
    out = capsys.readouterr().out
    assert seen["skipped"] == seen["new"] == {"10.0.0.13", "10.0.0.14"}  # the new hosts are not contacted
    hosts = [h["address"] for h in written[-1]["inventory"]["hosts"]]
    assert hosts == ["127.0.0.1", "10.0.0.12"] + list(ready)
    assert written[-1]["history"][-1]["operation"] == "node finish 10.0.0.13,10.0.0.14"
    assert written[-1]["inventory"]["hosts"][2]["nodeName"] == "w13"
    if len(ready) == 2:
        assert not os.path.exists(path) and "join token abcdef deleted; join file removed" in out
    else:
        assert os.path.exists(path) and "10.0.0.14 not yet: the join token abcdef and %s are kept" % path in out
