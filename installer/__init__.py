"""The air-gapped Kubernetes installer that ships inside every bundle.

Python standard library only, Python 3.6+ (CentOS 7 python3, EL8 platform-python, EL9/EL10 python3).
Entry point: ``install.py`` in the bundle root, which runs :func:`installer.cli.main`.
"""

__version__ = "0.1.0"
