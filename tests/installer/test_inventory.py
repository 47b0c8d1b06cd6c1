import pytest

from installer.errors import InstallerError
from installer.inventory import ROLE_CONTROL_PLANE, ROLE_WORKER, from_flags, parse_ini

GOOD = """
# cluster
[all:vars]
ansible_user=centos
ansible_ssh_private_key_file=/keys/id

[control_plane]
cp1 ansible_host=10.0.0.11

[workers]
w1 ansible_host=10.0.0.12 ansible_port=2222 ansible_user=root
10.0.0.13

[workers:vars]
ansible_port=2200
"""


def test_good_inventory():
    inv = parse_ini(GOOD, "inv.ini")
    assert [h.address for h in inv.hosts] == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    cp, w1, w2 = inv.hosts
    assert cp.role == ROLE_CONTROL_PLANE and cp.name == "cp1" and cp.user == "centos" and cp.key == "/keys/id"
    assert cp.port == 22
    assert w1.role == ROLE_WORKER and w1.port == 2222 and w1.user == "root" and w1.name == "w1"
    assert w2.name is None and w2.port == 2200 and w2.label == "10.0.0.13"
    assert inv.first_control_plane is cp


def test_defaults_from_flags_apply_but_file_wins():
    inv = parse_ini("[control_plane]\n10.0.0.1\n10.0.0.2 ansible_user=admin\n", "i", {"user": "ops", "key": "/k"})
    assert [h.user for h in inv.hosts] == ["ops", "admin"]
    assert inv.hosts[0].key == "/k"


@pytest.mark.parametrize("text, words", [
    ("[control_plane]\ncp1 ansible_hots=10.0.0.1\n", ["line 2", "ansible_hots", "did you mean 'ansible_host'"]),
    ("[control_plain]\n10.0.0.1\n", ["line 1", "control_plain", "did you mean 'control_plane'"]),
    ("[workers]\n10.0.0.2\n", ["no control-plane host"]),
    ("[control_plane]\n10.0.0.1\n[workers]\n10.0.0.1\n", ["line 4", "already listed on line 2"]),
    ("[control_plane]\na ansible_host=10.0.0.1\n[workers]\nb ansible_host=10.0.0.1\n", ["twice"]),
    ("10.0.0.1\n", ["outside any [group]"]),
    ("[control_plane]\ncp ansible_host=10.0.0.1 ansible_port=abc\n", ["not a port number"]),
    ("[control_plane]\ncp ansible_host=10.0.0.1 junk\n", ["'junk' is not key=value"]),
    ("[control_plane\n10.0.0.1\n", ["unterminated"]),
    ("[control_plane]\na ansible_host=10.0.0.1 name=Node_1\n", ["not a valid"]),
    ("[control_plane]\na ansible_host=10.0.0.1 name=n\nb ansible_host=10.0.0.2 name=n\n", ["node name 'n'"]),
])
def test_bad_inventory(text, words):
    with pytest.raises(InstallerError) as e:
        parse_ini(text, "inv.ini")
    msg = str(e.value)
    for w in words:
        assert w in msg
    assert "\n" not in msg  # one paragraph


def test_flags():
    inv = from_flags("10.0.0.11", "10.0.0.12, 10.0.0.13", user="admin", key="/k")
    assert [(h.address, h.role) for h in inv.hosts] == [
        ("10.0.0.11", ROLE_CONTROL_PLANE), ("10.0.0.12", ROLE_WORKER), ("10.0.0.13", ROLE_WORKER)]
    assert all(h.user == "admin" and h.key == "/k" for h in inv.hosts)
    with pytest.raises(InstallerError, match="no control-plane"):
        from_flags("", "10.0.0.12")
    with pytest.raises(InstallerError, match="twice"):
        from_flags("10.0.0.11", "10.0.0.11")
    with pytest.raises(InstallerError, match="not a host address"):
        from_flags("10.0.0.11", "bad host")
