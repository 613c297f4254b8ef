"""What a dock event does outside dockd: the bay's LED, and the ``[dock] on_event`` command.

Each bay has a queue and a thread of its own: the session that raised an event
never waits for an LED or a command, and one bay's slow command never delays
another bay; within a bay, events are handled one at a time in the order they
happened. For each event the bay's LED (if ``[[dock.bay]] led`` names one) is
set to the state's pattern, then the command runs:

* as an argument list, never through a shell; ``{event}``, ``{bay}``, ``{state}``,
  ``{device}`` and ``{devnode}`` in an argument are replaced by the event's values;
* with the event as one JSON object (and a newline) on its standard input;
* for at most ``[dock] on_event_timeout_s`` seconds (then its process group is
  killed). A command that fails or hangs is logged, never fatal.

LEDs are driven through the kernel's LED class (``/sys/class/leds/NAME``):

    =============================  ===========================================
    bay                            LED
    =============================  ===========================================
    idle                           off
    docked, copying                slow blink (timer trigger, 500 ms on/off)
    done, safe to unplug           on
    done, still mounted            slow blink
    failed                         fast blink (timer trigger, 100 ms on/off)
    =============================  ===========================================
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from dockd.config.dock import EVENT_FIELDS, render

log = structlog.get_logger("dockd.dock")

LED_ROOT = Path("/sys/class/leds")
#: pattern -> (trigger, brightness or None, (delay_on, delay_off) in ms or None)
PATTERNS: dict[str, tuple[str, str | None, tuple[int, int] | None]] = {
    "off": ("none", "0", None),
    "on": ("none", "max", None),
    "blink": ("timer", None, (500, 500)),
    "fast-blink": ("timer", None, (100, 100)),
}


def led_pattern(state: str, safe_to_unplug: bool) -> str:
    """The LED pattern of a bay's state (the table above)."""
    if state == "idle":
        return "off"
    if state == "failed":
        return "fast-blink"
    if state == "done" and safe_to_unplug:
        return "on"
    return "blink"


def set_led(root: Path, name: str, pattern: str) -> None:
    """Write the pattern to ``root/name``'s trigger, brightness and timer delays."""
    trigger, brightness, delays = PATTERNS[pattern]
    led = root / name
    (led / "trigger").write_text(trigger)
    if delays is not None:  # the timer trigger makes delay_on/delay_off appear
        (led / "delay_on").write_text(str(delays[0]))
        (led / "delay_off").write_text(str(delays[1]))
    if brightness == "max":
        try:
            brightness = (led / "max_brightness").read_text().strip() or "1"
        except OSError:
            brightness = "1"
    if brightness is not None:
        (led / "brightness").write_text(brightness)


class EventHooks:
    """Per-bay workers applying LED patterns and running the event command."""

    def __init__(
        self,
        command: tuple[str, ...],
        timeout_s: float,
        leds: Mapping[str, str],
        *,
        led_root: Path = LED_ROOT,
    ) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self.leds = dict(leds)  # bay name -> LED name
        self.led_root = led_root
        self._queues: dict[str, queue.Queue[dict[str, Any] | None]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._led_now: dict[str, str] = {}
        self._stopping = False

    def start(self) -> None:
        """Every configured LED off (idle), whatever a previous run left."""
        for bay in self.leds:
            self.publish({"bay": bay, "state": "idle", "safe_to_unplug": False, "event": None})

    def publish(self, event: dict[str, Any]) -> None:
        """Queue one event for its bay; never blocks."""
        bay = str(event.get("bay"))
        with self._lock:
            if self._stopping:
                return
            q = self._queues.get(bay)
            if q is None:
                q = self._queues[bay] = queue.Queue()
                t = threading.Thread(
                    target=self._work, args=(bay, q), name=f"dock-hooks-{bay}", daemon=True
                )
                self._threads.append(t)
                t.start()
        q.put(event)

    def stop(self, timeout: float) -> bool:
        """Handle what is queued, for at most ``timeout`` s; True when every worker ended."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            for q in self._queues.values():
                q.put(None)
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    # ------------------------------------------------------------------ workers

    def _work(self, bay: str, q: queue.Queue[dict[str, Any] | None]) -> None:
        while (event := q.get()) is not None:
            try:
                self._led(bay, event)
                if event.get("event") and self.command:
                    self._run(event)
            except Exception:
                log.exception("dock event hook failed", bay=bay, dock_event=event.get("event"))

    def _led(self, bay: str, event: dict[str, Any]) -> None:
        name = self.leds.get(bay)
        if name is None:
            return
        pattern = led_pattern(str(event.get("state")), bool(event.get("safe_to_unplug")))
        if self._led_now.get(name) == pattern:
            return
        try:
            set_led(self.led_root, name, pattern)
        except OSError as exc:
            log.warning(
                "bay LED not set",
                bay=bay,
                led=str(self.led_root / name),
                pattern=pattern,
                error=str(exc),
            )
            self._led_now.pop(name, None)
            return
        self._led_now[name] = pattern

    def _run(self, event: dict[str, Any]) -> None:
        values = {k: str(event.get(k) or "") for k in EVENT_FIELDS}
        argv = render(self.command, **values)
        data = json.dumps(event, ensure_ascii=False).encode() + b"\n"
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a timeout kills the command and its children
                close_fds=True,
            )
        except OSError as exc:
            log.warning("dock event command not run", argv=argv, error=str(exc))
            return
        try:
            out, _ = proc.communicate(data, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            log.warning(
                "dock event command timed out",
                argv=argv,
                timeout_s=self.timeout_s,
                dock_event=event.get("event"),
                bay=event.get("bay"),
            )
            return
        text = out.decode("utf-8", "replace").strip()[-500:] or None
        if proc.returncode != 0:
            log.warning(
                "dock event command failed",
                argv=argv,
                exit_code=proc.returncode,
                output=text,
                dock_event=event.get("event"),
                bay=event.get("bay"),
            )
        else:
            log.debug(
                "dock event command ran",
                argv=argv,
                took_s=round(time.monotonic() - t0, 3),
                dock_event=event.get("event"),
            )
