/**
 * Realistic device models for the simulator: each kind knows its meta, its first state, and how it changes over time
 * (pure functions of a random source, so a seeded run is repeatable).
 */
export type DeviceKind = 'light' | 'plug' | 'thermostat' | 'motion' | 'door' | 'leak';

export interface SimDevice {
  readonly id: string;
  readonly kind: DeviceKind;
  readonly name: string;
  readonly room: string;
  state: Record<string, unknown>;
}

export type Random = () => number;

/** A small seeded PRNG (mulberry32) so the demo and tests can repeat a run. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ROOMS = ['Living Room', 'Kitchen', 'Bedroom', 'Bathroom', 'Hallway', 'Office', 'Garage'];

/** Counts per kind for the default ~30-device home. */
export const DEFAULT_HOME: Readonly<Record<DeviceKind, number>> = { light: 10, plug: 5, thermostat: 3, motion: 5, door: 4, leak: 3 };

const round1 = (n: number): number => Math.round(n * 10) / 10;

export function initialState(kind: DeviceKind, rnd: Random): Record<string, unknown> {
  switch (kind) {
    case 'light':
      return { state: rnd() < 0.5 ? 'ON' : 'OFF', brightness: Math.round(rnd() * 254), color_temp: 250 + Math.round(rnd() * 200) };
    case 'plug':
      return { state: 'ON', power: round1(rnd() * 120), energy: round1(rnd() * 50) };
    case 'thermostat':
      return { current_temperature: round1(19 + rnd() * 3), target_temperature: 21, system_mode: 'heat', running_state: 'idle' };
    case 'motion':
      return { occupancy: false, illuminance: Math.round(rnd() * 300), battery: 80 + Math.round(rnd() * 20) };
    case 'door':
      return { contact: true, battery: 80 + Math.round(rnd() * 20) };
    case 'leak':
      return { water_leak: false, battery: 80 + Math.round(rnd() * 20) };
  }
}

/** The next state a device reports (a plausible small change). */
export function nextState(device: SimDevice, rnd: Random): Record<string, unknown> {
  const s = { ...device.state };
  switch (device.kind) {
    case 'light':
      if (rnd() < 0.5) s.state = s.state === 'ON' ? 'OFF' : 'ON';
      else s.brightness = Math.round(rnd() * 254);
      break;
    case 'plug':
      s.power = round1(rnd() * 120);
      s.energy = round1(Number(s.energy) + rnd() * 0.1);
      break;
    case 'thermostat': {
      const current = round1(Number(s.current_temperature) + (rnd() - 0.5) * 0.4);
      s.current_temperature = current;
      s.running_state = current < Number(s.target_temperature) ? 'heat' : 'idle';
      break;
    }
    case 'motion':
      s.occupancy = !s.occupancy;
      s.illuminance = Math.round(rnd() * 300);
      break;
    case 'door':
      s.contact = !s.contact;
      break;
    case 'leak':
      s.water_leak = rnd() < 0.05;
      break;
  }
  return s;
}

export function buildHome(counts: Readonly<Record<DeviceKind, number>> = DEFAULT_HOME, rnd: Random = Math.random): SimDevice[] {
  const devices: SimDevice[] = [];
  for (const kind of Object.keys(counts) as DeviceKind[]) {
    for (let i = 1; i <= counts[kind]; i += 1) {
      const room = ROOMS[(devices.length * 3 + i) % ROOMS.length] ?? 'Living Room';
      devices.push({ id: `${kind}-${i}`, kind, name: `${room} ${kind} ${i}`, room, state: initialState(kind, rnd) });
    }
  }
  return devices;
}

/** Meta as published retained on devices/<id>/meta. `type` uses the critical-type names where they apply. */
export function metaOf(device: SimDevice): { name: string; type: string; room: string } {
  const type = device.kind === 'door' ? 'contact' : device.kind;
  return { name: device.name, type, room: device.room };
}
