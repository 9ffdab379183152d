"""The role's one filter: `nftc matrix FILE --format json` -> the TCP paths between hosts that the role checks.

Paths are dicts {"from": HOST, "to": HOST, "ports": [N, ...]}, the shape of nftc_required_paths. Host names are
the policy's, which the role takes to be the inventory's (nftc_host defaults to inventory_hostname). A range
("7110-7111/tcp") is checked at its first and last port; UDP is not checked (no answer proves nothing).
"""


def nftc_matrix_paths(document):
    hosts = set(document.get("hosts", ()))
    paths = []
    for cell in document.get("matrix", ()):
        source, target = cell.get("from"), cell.get("to")
        if source not in hosts or target not in hosts or source == target:
            continue
        ports = sorted({port for opening in cell.get("open") or () for text in opening.get("ports", ())
                        for port in _tcp_ports(text)})
        if ports:
            paths.append({"from": source, "to": target, "ports": ports})
    return paths


def _tcp_ports(text):
    """'7025/tcp' -> (7025,); '7110-7111/tcp' -> (7110, 7111); anything else (udp, 'any') -> ()."""
    number, _, protocol = str(text).partition("/")
    if protocol != "tcp":
        return ()
    first, _, last = number.partition("-")
    if not first.isdigit() or not (last or first).isdigit():
        return ()
    return tuple(sorted({int(first), int(last or first)}))


class FilterModule:
    def filters(self):
        return {"nftc_matrix_paths": nftc_matrix_paths}
