import { RequestRecorder } from "../src/recorder.js";

const request = (url = "/") => ({ method: "POST", url, headers: { host: "fixture" } });

describe("RequestRecorder", () => {
  it("keeps only the latest 10,000 requests, but counts them all", () => {
    const recorder = new RequestRecorder();
    for (let index = 0; index < 10_005; index += 1) recorder.finish(recorder.begin(request(`/${index}`)));
    expect(recorder.requests).toHaveLength(10_000);
    expect(recorder.requests[0]).toMatchObject({ id: 6, path: "/5" });
    expect(recorder.requests.at(-1)).toMatchObject({ id: 10_005, path: "/10004" });
    expect(recorder.totals).toMatchObject({ requests: 10_005, inFlight: 0 });
  });

  it("drops the oldest bodies beyond its byte budget", () => {
    const recorder = new RequestRecorder();
    const body = "x".repeat(20 * 1024 * 1024);
    for (let index = 0; index < 4; index += 1) recorder.setBody(recorder.begin(request()), body);
    // 64 MiB holds three 20 MiB bodies.
    expect(recorder.requests.map((record) => record.id)).toEqual([2, 3, 4]);
  });

  it("counts a request in flight until it finishes or is aborted, whichever is first", () => {
    const recorder = new RequestRecorder();
    const finished = recorder.begin(request());
    const aborted = recorder.begin(request());
    expect(recorder.inFlight()).toBe(2);
    recorder.finish(finished);
    recorder.abort(finished);
    recorder.abort(aborted);
    recorder.finish(aborted);
    expect(recorder.inFlight()).toBe(0);
    expect(finished).toMatchObject({ aborted: false, finishedAt: expect.any(Number) });
    expect(aborted).toMatchObject({ aborted: true, abortedAt: expect.any(Number) });
    expect(aborted.finishedAt).toBeUndefined();
  });

  it("resolves waitForAbort for past and future aborts and rejects when none can come", async () => {
    const recorder = new RequestRecorder();
    const early = recorder.begin(request());
    recorder.abort(early);
    await expect(recorder.waitForAbort(early.id, 10)).resolves.toBe(early.abortedAt);

    // An id that has not arrived yet.
    const pending = recorder.waitForAbort(2, 1_000);
    const late = recorder.begin(request());
    recorder.abort(late);
    await expect(pending).resolves.toBe(late.abortedAt);

    const done = recorder.begin(request());
    const waiting = recorder.waitForAbort(done.id, 1_000);
    recorder.finish(done);
    await expect(waiting).rejects.toThrow("request 3 finished without being aborted");

    const evicting = new RequestRecorder();
    for (let index = 0; index < 10_001; index += 1) evicting.begin(request());
    await expect(evicting.waitForAbort(1, 1_000)).rejects.toThrow("request 1 is unknown or no longer recorded");
  });
});
