// load_trace.mjs FILE: reads a trace-event JSON file with Chrome DevTools'
// trace engine (the Performance panel's) and prints, as JSON, what it made
// of each thread: its name, its slices, how many of them its tree of
// slices holds (a slice that does not nest is left out of it), their names.
// test_trace_reader.py compares that with what pprofc wrote.
import fs from 'node:fs';
import * as Trace from '@paulirish/trace_engine';

// The engine measures rectangles for the panel; node has none (its
// README's advice: a stand-in).
globalThis.DOMRect ??= class { constructor(x, y, w, h) { Object.assign(this, { x, y, width: w, height: h }); } };

const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const model = Trace.TraceModel.Model.createWithAllHandlers();
await model.parse(doc.traceEvents ?? doc);
const renderer = model.parsedTrace().data.Renderer;

function countNodes(nodes) {
  let n = 0;
  for (const node of nodes) n += 1 + countNodes(node.children ?? []);
  return n;
}

const threads = [];
for (const [pid, proc] of renderer.processes) {
  for (const [tid, th] of proc.threads) {
    const slices = th.entries.filter(e => e.ph === 'X').length;
    const inTree = th.tree ? countNodes(th.tree.roots) : 0;
    threads.push({ pid, tid, name: th.name, slices, misnested: th.entries.length - inTree,
                   names: [...new Set(th.entries.map(e => e.name))] });
  }
}
console.log(JSON.stringify({ threads }));
