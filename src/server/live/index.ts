export { InProcessChangeNotifier, type ChangeEvent, type ChangeListener, type ChangeNotifier } from './notifier.js';
export { TimerWheel, type Expirable } from './wheel.js';
export {
  LiveWaits,
  type DeltaAnswer,
  type HeldConnection,
  type HoldSpec,
  type LiveOutcome,
  type LiveReason,
  type LiveWaitStats,
} from './waits.js';
