"""Record real calls into vcrpy cassettes with timing, replay them offline, and benchmark.

    from imagegen.recording import Replay, record_cassette

Needs the ``bench`` extra (vcrpy; matplotlib for charts): ``pip install "imagegen[bench]"``.
"""

from ._cassette import CassetteInfo, read_info, recording_vcr, replay_vcr
from ._record import RecordingClient, record_cassette
from ._replay import Replay, ReplayClock, ScaledPollSchedule

__all__ = [
    "CassetteInfo",
    "RecordingClient",
    "Replay",
    "ReplayClock",
    "ScaledPollSchedule",
    "read_info",
    "record_cassette",
    "recording_vcr",
    "replay_vcr",
]
