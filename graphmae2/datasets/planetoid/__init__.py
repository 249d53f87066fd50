"""The Planetoid citation graphs: Cora and CiteSeer shipped as compact ``.npz`` files
(:mod:`.packaged`), PubMed downloaded and verified (:mod:`.download`), all read from the
raw ``ind.<name>.*`` files (:mod:`.raw`) with a pickle reader that builds only what those
files hold (:mod:`.safe_pickle`), checked against ``SHA256SUMS`` lists (:mod:`.checksums`).
``scripts/build_packaged.py`` rebuilds the shipped files."""
from .download import PLANETOID_URL, DownloadError, fetch_planetoid
from .packaged import PACKAGED, load_packaged
from .raw import planetoid_files, read_planetoid_raw

__all__ = ["PACKAGED", "PLANETOID_URL", "DownloadError", "fetch_planetoid", "load_packaged", "planetoid_files",
           "read_planetoid_raw"]
