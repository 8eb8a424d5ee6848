// Plays a recorded response stream back at its original pace (or faster),
// from the replay API's timed events: what the caller saw, as they saw it.
import { textOfChunk } from "@modelgate/audit/replay-text";
import { useEffect, useRef, useState } from "react";

export interface ReplayEvent {
  seq: number;
  offsetMs: number;
  data: string;
}

const SPEEDS = [0.5, 1, 2, 4, 10];

export function ReplayPlayer({ events, firstOffsetMs }: { events: ReplayEvent[]; firstOffsetMs: number }) {
  const [shown, setShown] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  // The playhead in recorded milliseconds, kept across pauses and speed changes.
  const playhead = useRef(firstOffsetMs);
  const texts = useRef<string[]>([]);
  if (texts.current.length !== events.length) texts.current = events.map((event) => textOfChunk(event.data));

  useEffect(() => {
    if (!playing) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let last = performance.now();
    const step = () => {
      const now = performance.now();
      playhead.current += (now - last) * speed;
      last = now;
      let next = shown;
      while (next < events.length && (events[next] as ReplayEvent).offsetMs <= playhead.current) next++;
      if (next !== shown) setShown(next);
      if (next >= events.length) {
        setPlaying(false);
        return;
      }
      const wait = ((events[next] as ReplayEvent).offsetMs - playhead.current) / speed;
      timer = setTimeout(step, Math.max(0, Math.min(wait, 1_000)));
    };
    step();
    return () => clearTimeout(timer);
  }, [playing, speed, shown, events]);

  const restart = () => {
    playhead.current = firstOffsetMs;
    setShown(0);
    setPlaying(true);
  };
  const done = shown >= events.length;
  const elapsed = shown > 0 ? (events[shown - 1] as ReplayEvent).offsetMs : firstOffsetMs;
  const total = events.length > 0 ? (events[events.length - 1] as ReplayEvent).offsetMs : 0;

  return (
    <div className="replay" data-testid="replay">
      <div className="actions">
        {playing ? (
          <button type="button" onClick={() => setPlaying(false)}>
            Pause
          </button>
        ) : (
          <button type="button" className="primary" onClick={() => (done ? restart() : setPlaying(true))}>
            {done ? "Replay" : shown > 0 ? "Resume" : "Play"}
          </button>
        )}
        <label>
          Speed{" "}
          <select value={speed} onChange={(event) => setSpeed(Number(event.target.value))}>
            {SPEEDS.map((value) => (
              <option key={value} value={value}>
                {value}×
              </option>
            ))}
          </select>
        </label>
        <button
          type="button"
          onClick={() => {
            setPlaying(false);
            setShown(events.length);
            playhead.current = total;
          }}
        >
          Show all
        </button>
        <span className="muted">
          chunk {shown}/{events.length} · {elapsed} ms of {total} ms
        </span>
      </div>
      <pre className="answer" data-testid="replay-text" aria-live="off">
        {texts.current.slice(0, shown).join("")}
      </pre>
    </div>
  );
}
