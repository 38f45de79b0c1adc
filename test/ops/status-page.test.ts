/**
 * The status page (GET /) in a real headless Chromium against the real daemon (in-process, HTTP listener on port 0),
 * real MQTT clients publishing devices, and the real sync server: it loads with no console or page error, shows a
 * device in its room, follows a state change without a reload (SSE), shows a device's HTML-looking name as text, and
 * fits a 360 px wide phone.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startOpsGateway, type OpsGateway } from './helpers.js';

const XSS_NAME = '<img src=x onerror="window.__xss=1">';

let browser: TestBrowser;
let gw: OpsGateway;
let server: TestServer;
let device: MqttClient;

beforeAll(async () => {
  browser = await launchBrowser();
  server = await startTestServer();
  const creds = await server.addClient();
  gw = await startOpsGateway({ serverUrl: server.url, clientId: creds.client_id, clientSecret: creds.client_secret });
  device = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0, clientId: 'page-test-devices' });
  // Known before the page opens: comes with the snapshot.
  await device.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Kitchen lamp', type: 'light', room: 'Kitchen' }), { qos: 1 });
  await device.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'ON', brightness: 200 }), { qos: 1 });
  await device.publishAsync('devices/lamp-1/availability', 'online', { qos: 1 });
});
afterAll(async () => {
  await device?.endAsync();
  await browser?.close();
  await gw?.close();
  await server?.close();
});

describe('the status page in a headless browser', () => {
  it('shows devices by room, follows MQTT changes live, escapes device names, fits 360 px, no console error', async () => {
    const { page, errors } = await browser.page({ width: 360, height: 740 });
    const response = await page.goto(`${gw.url}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toMatch(/^default-src 'self'; script-src 'sha256-/);

    const lamp = page.locator('[data-room="Kitchen"] [data-device-id="lamp-1"]');
    await lamp.waitFor({ timeout: 10_000 });
    expect(await lamp.locator('.name').textContent()).toBe('Kitchen lamp');
    expect(await lamp.locator('[data-attribute="state"] .v').textContent()).toBe('ON');
    expect(await lamp.textContent()).toContain('online');
    await page.evaluate('window.__sameDocument = true');

    // A change published over MQTT reaches the open page (SSE), without a reload.
    await device.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'OFF' }), { qos: 1 });
    await lamp.locator('[data-attribute="state"] .v', { hasText: /^OFF$/ }).waitFor({ timeout: 10_000 });
    // A device that appears after the page opened, in a room of its own.
    await device.publishAsync('devices/plug-9/meta', JSON.stringify({ name: 'Hall plug', type: 'switch', room: 'Hall' }), { qos: 1 });
    await page.locator('[data-room="Hall"] [data-device-id="plug-9"]').waitFor({ timeout: 10_000 });

    // A device that names itself with markup is shown as text, and nothing it says runs.
    await device.publishAsync('devices/xss-1/meta', JSON.stringify({ name: XSS_NAME, type: 'sensor', room: '<b>Attic</b>' }), { qos: 1 });
    await device.publishAsync('devices/xss-1/state', JSON.stringify({ '<i>k</i>': '<script>window.__xss=2</script>' }), { qos: 1 });
    const xss = page.locator('[data-device-id="xss-1"]');
    await xss.waitFor({ timeout: 10_000 });
    expect(await xss.locator('.name').textContent()).toBe(XSS_NAME);
    expect(await page.locator('[data-room="<b>Attic</b>"] h3').textContent()).toBe('<b>Attic</b> (1)');
    expect(await page.evaluate(`document.querySelectorAll('img, b, i, main script').length`)).toBe(0);
    expect(await page.evaluate('typeof window.__xss')).toBe('undefined');

    expect(await page.evaluate('window.__sameDocument')).toBe(true); // never reloaded
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
    expect(await page.locator('#device-count').textContent()).toBe('3');
    expect(await page.locator('#mqtt-clients').textContent()).toBe('1');
    expect(await page.locator('#health').textContent()).toBe('healthy');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows the sync mode with the last sync and pending changes, updated as a sync runs', async () => {
    const { page, errors } = await browser.page();
    await page.goto(`${gw.url}/`);
    await page.locator('#sync-mode').waitFor();
    const res = await fetch(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(200);
    // (The page's CSP forbids eval, so waits go through locators rather than waitForFunction.)
    await page.locator('#sync-last', { hasText: / ago\)$/ }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#sync-pending').textContent()).toMatch(/^\d+ changes?/);
    expect(['live', 'polling']).toContain(await page.locator('#sync-mode').textContent());
    expect(await page.locator('#sync-last').textContent()).toMatch(/ago\)$/);
    expect(errors).toEqual([]);
    await page.close();
  });
});
