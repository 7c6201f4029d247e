"""A pytest-xdist scheduler that runs the ``xdist_group("serial")`` tests last, alone.

A few tests time real intervals of a fraction of a second (a recording that must catch an
emulator's job still running at its first poll, 0.12 s in). They hold on a quiet machine, and
parallel workers make the machine busy; so in a parallel run they wait until every other test
has finished and every other worker has left, then run one after another on the last worker.
Everything else is ``--dist loadgroup``, in collection order (tests/conftest.py puts the long
tests first and the serial group last).
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadGroupScheduling

#: The group name of the tests that run alone (``@pytest.mark.xdist_group("serial")``).
SERIAL = "serial"


class SerialLastScheduling(LoadGroupScheduling):
    """``loadgroup``, except that the ``serial`` group is held back until it can run alone."""

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        # Keep the collection order (loadscope would put the groups with most tests first).
        config.option.loadscopereorder = False
        self._serial_node: Any = None

    def _only_serial_left(self) -> bool:
        return list(self.workqueue) == [SERIAL]

    def _assign_work_unit(self, node: Any) -> None:
        if SERIAL in self.workqueue:
            if self._only_serial_left():
                return  # handed out by _start_serial, once every other worker has gone
            self.workqueue.move_to_end(SERIAL)  # work a crashed worker left comes back after it
        super()._assign_work_unit(node)

    def _reschedule(self, node: Any) -> None:
        if node.shutting_down or not self._only_serial_left():
            super()._reschedule(node)
            return
        if any(other is not node and not other.shutting_down for other in self.nodes):
            node.shutdown()  # it finishes what it holds and leaves; the last worker runs the group
            return
        self._serial_node = node
        self._start_serial()

    def remove_node(self, node: Any) -> str | None:
        crashed = super().remove_node(node)
        self._start_serial()
        return crashed

    def _start_serial(self) -> None:
        node = self._serial_node
        if node is None or not self._only_serial_left() or node not in self.nodes:
            return
        if any(other is not node for other in self.nodes):
            return  # the others are still finishing their last tests
        super()._assign_work_unit(node)
