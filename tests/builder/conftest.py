from tests.bundle.conftest import gpg_keys  # noqa: F401 - the throwaway signing keys, shared
