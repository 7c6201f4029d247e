"""Result storage on a shared directory: concurrent writers of one name never collide."""

from __future__ import annotations

import threading
from pathlib import Path

from imagegen.fleet._storage import ResultStorage


def test_two_writers_of_one_name_in_one_process_both_land_whole(tmp_path: Path) -> None:
    storage = ResultStorage(str(tmp_path))
    payloads = [bytes([k]) * 2_000_000 for k in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def write(data: bytes) -> None:
        start.wait()
        try:
            storage.write("images/same.png", data)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert storage.read("images/same.png") in payloads  # one writer's whole file, never a mix
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["same.png"]  # no partial files left
