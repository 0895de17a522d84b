// load_test.js — the load test of `make loadtest` (bench/loadtest.lua) for k6 users.
//
// Not run here (k6 is not installable on the project's machines): written
// against k6's documented API (k6/http, check, sleep, scenarios, tagged
// thresholds). Against a server seeded by bench/loadtest_seed.py (users
// u0@load.test … with one password) and started with the limits of
// bench/README.md (make loadtest) off:
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e LOADTEST_PASSWORD='load test password 14' bench/load_test.js
//
// Scenario "users": LOADTEST_VUS (1000) virtual users ramp up over
// LOADTEST_RAMP_S (60 s) and stay for LOADTEST_DURATION_S (120 s) in all;
// each logs in once, learns its notebooks and their conversations, then
// loops list → open → messages → ask (POST, non-streamed) → search, thinking
// LOADTEST_THINK_MS (1000) ± 50 % after each request. Scenario "saturation"
// (after it, LOADTEST_SATURATION_S, 30 s; 0 leaves it out): the same users
// with no think time. Thresholds (on the "users" scenario, per endpoint):
// the original system's p95 < 300 ms, p99 < 500 ms, errors < 1 %;
// LOADTEST_STRICT=1 adds this project's p99 < 50 ms for every endpoint but
// login. LOADTEST_P95_MS, LOADTEST_P99_MS, LOADTEST_MAX_ERROR_PCT and
// LOADTEST_STRICT_P99_MS change them, as for make loadtest.

import http from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const PASSWORD = __ENV.LOADTEST_PASSWORD || 'load test password 14';
const num = (k, d) => (__ENV[k] !== undefined && __ENV[k] !== '' ? Number(__ENV[k]) : d);
const VUS = num('LOADTEST_VUS', 1000);
const USERS = num('LOADTEST_USERS', 10000);
const RAMP_S = num('LOADTEST_RAMP_S', 60);
const DURATION_S = num('LOADTEST_DURATION_S', 120);
const SAT_S = num('LOADTEST_SATURATION_S', 30);
const THINK_MS = num('LOADTEST_THINK_MS', 1000);
const JITTER = num('LOADTEST_THINK_JITTER', 0.5);
const P95 = num('LOADTEST_P95_MS', 300);
const P99 = num('LOADTEST_P99_MS', 500);
const ERR = num('LOADTEST_MAX_ERROR_PCT', 1) / 100;
const STRICT = __ENV.LOADTEST_STRICT === '1';
const STRICT_P99 = num('LOADTEST_STRICT_P99_MS', 50);

const ENDPOINTS = ['login', 'list', 'open', 'messages', 'ask', 'search'];
const QUESTIONS = [
	'What feeds the flame of a candle?', 'How does the melted wax get up the wick?',
	'Why does the bright part of the flame glow?', 'What happens to water when it evaporates?',
	'How do clouds form?', 'Who invented the printing press?', 'How did movable type change printing?',
];
const TERMS = ['candle', 'wax', 'flame', 'wick', 'water', 'clouds', 'rain', 'evaporation', 'printing', 'press', 'type', 'ink'];

const thresholds = {};
for (const ep of ENDPOINTS) {
	const d = [`p(95)<${P95}`, `p(99)<${P99}`];
	if (STRICT && ep !== 'login') d.push(`p(99)<${STRICT_P99}`);
	thresholds[`http_req_duration{scenario:users,endpoint:${ep}}`] = d;
	thresholds[`http_req_failed{scenario:users,endpoint:${ep}}`] = [`rate<${ERR}`];
}
thresholds['http_req_failed{scenario:users}'] = [`rate<${ERR}`];

const scenarios = {
	users: {
		executor: 'ramping-vus',
		startVUs: 0,
		stages: [
			{ duration: `${RAMP_S}s`, target: VUS },
			{ duration: `${Math.max(DURATION_S - RAMP_S, 1)}s`, target: VUS },
		],
		gracefulRampDown: '5s',
		exec: 'user',
	},
};
if (SAT_S > 0) {
	scenarios.saturation = {
		executor: 'constant-vus',
		vus: VUS,
		duration: `${SAT_S}s`,
		startTime: `${DURATION_S + 10}s`,
		exec: 'saturate',
	};
}

export const options = { scenarios, thresholds, setupTimeout: '60s' };

// per-VU state (each VU has its own copy of the module)
let token = null;
let notebooks = []; // [{id, conversation}]

const ok = (ep, status) => ({ responseCallback: http.expectedStatuses(status), tags: { endpoint: ep } });

function auth(ep, status, extra) {
	const p = ok(ep, status);
	p.headers = Object.assign({ Authorization: `Bearer ${token}` }, extra || {});
	return p;
}

function think() {
	if (THINK_MS > 0) sleep((THINK_MS * (1 - JITTER + 2 * JITTER * Math.random())) / 1000);
}

function login() {
	const i = (exec.vu.idInTest - 1) % USERS;
	const r = http.post(`${BASE}/v1/auth/login`, JSON.stringify({ email: `u${i}@load.test`, password: PASSWORD }),
		Object.assign(ok('login', 200), { headers: { 'Content-Type': 'application/json' } }));
	if (!check(r, { 'login 200': (x) => x.status === 200 })) return false;
	token = r.json('access_token');
	// the user's notebooks and one conversation of each (set-up requests, not measured per endpoint)
	const l = http.get(`${BASE}/v1/notebooks?limit=20`, auth('setup', 200));
	notebooks = [];
	for (const nb of l.status === 200 ? l.json('items') : []) {
		const c = http.get(`${BASE}/v1/notebooks/${nb.id}/conversations?limit=1`, auth('setup', 200));
		let conv = c.status === 200 && c.json('items').length ? c.json('items')[0].id : null;
		if (!conv) {
			const n = http.post(`${BASE}/v1/notebooks/${nb.id}/conversations`, '{}',
				auth('setup', 201, { 'Content-Type': 'application/json' }));
			conv = n.status === 201 ? n.json('id') : null;
		}
		if (conv) notebooks.push({ id: nb.id, conversation: conv });
	}
	return notebooks.length > 0;
}

function loop(withThink) {
	if (!token && !login()) {
		token = null;
		sleep(1);
		return;
	}
	const nb = notebooks[Math.floor(Math.random() * notebooks.length)];
	const steps = [
		() => http.get(`${BASE}/v1/notebooks?limit=20`, auth('list', 200)),
		() => http.get(`${BASE}/v1/notebooks/${nb.id}`, auth('open', 200)),
		() => http.get(`${BASE}/v1/conversations/${nb.conversation}/messages?limit=20`, auth('messages', 200)),
		() => http.post(`${BASE}/v1/conversations/${nb.conversation}/messages`,
			JSON.stringify({ content: QUESTIONS[Math.floor(Math.random() * QUESTIONS.length)] }),
			auth('ask', 201, { 'Content-Type': 'application/json' })),
		() => http.get(`${BASE}/v1/notebooks/${nb.id}/search?limit=10&q=${TERMS[Math.floor(Math.random() * TERMS.length)]}`,
			auth('search', 200)),
	];
	for (const step of steps) {
		const r = step();
		check(r, { 'expected status': (x) => x.status === 200 || x.status === 201 });
		if (r.status === 401) { // token gone: log in again next loop
			token = null;
			return;
		}
		if (withThink) think();
	}
}

export function user() { loop(true); }
export function saturate() { loop(false); }
