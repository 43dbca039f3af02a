/**
 * What a server process costs while a scenario runs, read from /proc (Linux): CPU time
 * (utime + stime) as a percentage of one core over the measured window, and peak resident memory
 * (VmRSS) sampled during it. A "tree" (PostgreSQL: the postmaster and its backends) is summed; its
 * memory is not reported, since shared buffers would be counted once per backend.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux this runs on) */
const TICKS_PER_SECOND = 100;

/** The numeric fields of /proc/<pid>/stat after the command name, or undefined once the process is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

// Fields after the name start at field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17, ppid 4.
const field = (fields: string[], n: number) => Number(fields[n - 3]);

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields && field(fields, 4) === pid) children.push(Number(entry));
  }
  return children;
}

/** CPU seconds used so far: the process itself, or (tree) it, its reaped children and its live children. */
export function cpuSeconds(pid: number, tree = false): number {
  const own = statFields(pid);
  if (!own) return 0;
  let ticks = field(own, 14) + field(own, 15);
  if (tree) {
    ticks += field(own, 16) + field(own, 17);
    for (const child of childrenOf(pid)) {
      const fields = statFields(child);
      if (fields) ticks += field(fields, 14) + field(fields, 15);
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** CPU seconds of a process's children that have exited and been waited for (a finished load generator). */
export function reapedChildrenSeconds(pid: number): number {
  const own = statFields(pid);
  return own ? (field(own, 16) + field(own, 17)) / TICKS_PER_SECOND : 0;
}

/** Resident memory of a process in MiB, or 0 once it is gone. */
export function rssMiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export interface Watched {
  pid: number;
  /** sum the process's children (PostgreSQL backends) into its CPU; memory is not sampled */
  tree?: boolean;
}

export interface Usage {
  /** % of one core over the window */
  cpu_pct: number;
  /** peak VmRSS during the window (not for trees) */
  rss_mib?: number;
}

/** Starts watching; `stop()` ends the window and returns each process's usage, in the order given. */
export function watch(processes: Watched[], intervalMs = 200): { stop(): Usage[] } {
  const startedAt = performance.now();
  const cpuAtStart = processes.map((p) => cpuSeconds(p.pid, p.tree ?? false));
  const peaks = processes.map((p) => (p.tree ? 0 : rssMiB(p.pid)));
  const sample = () => {
    processes.forEach((p, i) => {
      if (!p.tree) peaks[i] = Math.max(peaks[i]!, rssMiB(p.pid));
    });
  };
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const seconds = (performance.now() - startedAt) / 1000;
      return processes.map((p, i) => ({
        cpu_pct: Math.round(((cpuSeconds(p.pid, p.tree ?? false) - cpuAtStart[i]!) / seconds) * 100),
        ...(p.tree ? {} : { rss_mib: Math.round(peaks[i]! * 10) / 10 }),
      }));
    },
  };
}

/** A process's open file descriptors, and how many of them are sockets (its open connections and listeners). */
export function openFiles(pid: number): { fds: number; sockets: number } {
  let fds = 0;
  let sockets = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      fds++;
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) sockets++;
      } catch {
        // closed between the listing and the read
      }
    }
  } catch {
    // the process is gone
  }
  return { fds, sockets };
}
