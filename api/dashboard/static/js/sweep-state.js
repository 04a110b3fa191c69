// What the sweep page knows of its sweep, shared by its modules (page-sweep.js loads it,
// sweep-front.js and sweep-trials.js draw it, sweep-actions.js updates it on cancel).

export const sweepId = Number(document.body.dataset.sweepId);

export const state = {
  sweep: null,
  trials: [],
  front: null,
  history: null,
  progress: null,
  frontIds: new Set(),
  finalLoads: 0,
};
