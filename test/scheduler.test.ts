// The scheduler's order and the slots that bound how many rules run at once (src/scheduler.ts).
import { describe, expect, it } from "vitest";
import { schedule, Slots } from "../src/scheduler.ts";

const opts = (jobs: number) => ({ jobs, keepGoing: false, signal: new AbortController().signal });

describe("scheduler", () => {
  it("runs what a finished task unblocked before the tasks ready from the start (depth first)", async () => {
    const nodes = [0, 1, 2].flatMap((i) => [
      { id: `w${i}`, deps: [] },
      { id: `r${i}`, deps: [`w${i}`] },
    ]);
    const order: string[] = [];
    await schedule(nodes, async (id) => void order.push(id), opts(1));
    expect(order).toEqual(["w0", "r0", "w1", "r1", "w2", "r2"]);
  });

  it("starts several unblocked tasks in the order they were declared", async () => {
    const nodes = [{ id: "root", deps: [] }, ...["a", "b", "c"].map((id) => ({ id, deps: ["root"] }))];
    const order: string[] = [];
    await schedule(nodes, async (id) => void order.push(id), opts(1));
    expect(order).toEqual(["root", "a", "b", "c"]);
  });

  it("slots let at most n holders run at once, in the order they asked", async () => {
    const slots = new Slots(2);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        slots.hold(async () => {
          started.push(i);
          most = Math.max(most, ++running);
          await new Promise((r) => setTimeout(r, 10));
          running--;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4]);
  });

  it("a slot is given back when its holder throws", async () => {
    const slots = new Slots(1);
    await expect(slots.hold(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await slots.hold(async () => "next")).toBe("next");
  });
});
