"""doctor: the runbook of a broken cluster, automated, read only.

The checks run in runbook order, one module per layer (cluster, nodes, pods, services); each module has the
commands it reads with (through Env.run, which refuses anything that is not a read) and pure classify_*
functions that turn their output into findings (installer.doctor.findings), so the classification is tested
on recorded real outputs (tests/installer/fixtures/doctor/). collect writes the offline support bundle.
"""
