import { useCallback, useEffect, useRef, useState } from "react";
import { ApiProblem, type Problem } from "../api/client";

export interface Loaded<T> {
  data: T | undefined;
  problem: Problem | undefined;
  loading: boolean;
  reload(): void;
}

/**
 * Loads with `load` when `key` changes, and again every `refreshMs` while
 * the tab is visible (live pages). Answers arriving after a newer request
 * started are dropped, so a slow old answer never replaces a new one.
 */
export function useApi<T>(load: () => Promise<T>, key: string, refreshMs?: number): Loaded<T> {
  const [data, setData] = useState<T>();
  const [problem, setProblem] = useState<Problem>();
  const [loading, setLoading] = useState(true);
  const latest = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const run = useCallback(async () => {
    const attempt = ++latest.current;
    setLoading(true);
    try {
      const value = await loadRef.current();
      if (attempt !== latest.current) return;
      setData(value);
      setProblem(undefined);
    } catch (error) {
      if (attempt !== latest.current) return;
      setProblem(error instanceof ApiProblem ? error.problem : { status: 0, code: "error", detail: String(error) });
    } finally {
      if (attempt === latest.current) setLoading(false);
    }
  }, []);

  // biome-ignore lint/correctness/useExhaustiveDependencies: key is what decides a reload
  useEffect(() => {
    setData(undefined);
    void run();
  }, [key, run]);

  useEffect(() => {
    if (!refreshMs) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void run();
    }, refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs, run]);

  return { data, problem, loading, reload: () => void run() };
}
