#!/usr/bin/env node
// A minimal SMSC written with the npm `smpp` package (an implementation independent of
// smsgw), for the interop tests to bind smsgw's ESME side (gateway/binds.py) against.
//
// Usage: node mini_smsc.js [--port N] [--system-id ID] [--password PW] [--mo-on-bind TEXT]
//                          [--no-receipts]
//
// Prints one JSON object per line on stdout:
//   {"event":"listening","port":N}                        once, after listen()
//   {"event":"connect"} / {"event":"close"}                per TCP session
//   {"event":"bind","command":"bind_transceiver","system_id":..,"status":0}
//   {"event":"submit_sm","seq":..,"message_id":..,"data_coding":..,"text":..,"hex":..,...}
//   {"event":"sent","what":"receipt"|"mo"|"enquire_link","seq":..}
//   {"event":"resp","command":"deliver_sm_resp"|"enquire_link_resp",.."seq":..,"status":..}
//   {"event":"enquire_link","seq":..}                      the ESME's keep-alive, answered
//   {"event":"unbind","seq":..}                            answered with unbind_resp
//   {"event":"pdu","command":..,"seq":..,"status":..}      anything else the ESME sent
// Reads JSON commands on stdin, one per line:
//   {"cmd":"mo","source_addr":..,"destination_addr":..,"text":..,"data_coding":0|8}
//   {"cmd":"enquire_link"}     send enquire_link to every bound session
//   {"cmd":"exit"}
'use strict';

const readline = require('readline');
const smpp = require('smpp');

function parseArgs(argv) {
	const opts = {
		port: 0,
		systemId: 'smsgw',
		password: 'secret',
		moOnBind: null,
		receipts: true,
	};
	for (let i = 2; i < argv.length; i++) {
		const arg = argv[i];
		const next = () => argv[++i];
		if (arg === '--port') opts.port = Number(next());
		else if (arg === '--system-id') opts.systemId = next();
		else if (arg === '--password') opts.password = next();
		else if (arg === '--mo-on-bind') opts.moOnBind = next();
		else if (arg === '--no-receipts') opts.receipts = false;
		else throw new Error('unknown argument ' + arg);
	}
	return opts;
}

const opts = parseArgs(process.argv);
let nextMessageId = 0x1A2B00;
const sessions = new Set(); // bound sessions

function emit(obj) {
	process.stdout.write(JSON.stringify(obj) + '\n');
}

function smppTime(date) {
	// yyMMddhhmm, the Appendix B receipt date form.
	const p = (n) => String(n).padStart(2, '0');
	return p(date.getUTCFullYear() % 100) + p(date.getUTCMonth() + 1) + p(date.getUTCDate()) +
		p(date.getUTCHours()) + p(date.getUTCMinutes());
}

function rawShortMessage(pdu) {
	// The decode filter turned short_message into {message, udh}; re-read the raw octets from
	// what the ESME sent so the test sees both our encoding and node's reading of it.
	const sm = pdu.short_message;
	if (sm && typeof sm === 'object' && !Buffer.isBuffer(sm)) {
		return typeof sm.message === 'string' ? sm.message : Buffer.from(sm.message || []);
	}
	return sm;
}

function sendMo(session, cmd) {
	const dataCoding = cmd.data_coding === undefined ? 0 : cmd.data_coding;
	const pdu = new smpp.PDU('deliver_sm', {
		source_addr: cmd.source_addr || '447700900001',
		source_addr_ton: 1,
		source_addr_npi: 1,
		destination_addr: cmd.destination_addr || '12345',
		esm_class: 0,
		data_coding: dataCoding,
		short_message: cmd.text,
	});
	session.send(pdu, (resp) => {
		emit({event: 'resp', command: resp.command, what: 'mo', seq: resp.sequence_number,
			status: resp.command_status});
	});
	emit({event: 'sent', what: 'mo', seq: pdu.sequence_number, data_coding: dataCoding});
}

function sendReceipt(session, submit, messageId) {
	const now = new Date();
	const text = rawShortMessage(submit);
	const first20 = (typeof text === 'string' ? text : '').slice(0, 20).replace(/[^ -~]/g, '.');
	const body = 'id:' + messageId + ' sub:001 dlvrd:001 submit date:' + smppTime(now) +
		' done date:' + smppTime(now) + ' stat:DELIVRD err:000 text:' + first20;
	const pdu = new smpp.PDU('deliver_sm', {
		source_addr: submit.destination_addr,
		destination_addr: submit.source_addr,
		esm_class: 0x04,
		data_coding: 0,
		short_message: body,
		receipted_message_id: messageId,
		message_state: 2,
		network_error_code: Buffer.from([3, 0, 0]),
	});
	session.send(pdu, (resp) => {
		emit({event: 'resp', command: resp.command, what: 'receipt', seq: resp.sequence_number,
			status: resp.command_status, message_id: messageId});
	});
	emit({event: 'sent', what: 'receipt', seq: pdu.sequence_number, message_id: messageId});
}

function onBind(session, pdu) {
	const ok = pdu.system_id === opts.systemId && pdu.password === opts.password;
	let status = smpp.ESME_ROK;
	if (pdu.system_id !== opts.systemId) status = smpp.ESME_RINVSYSID;
	else if (pdu.password !== opts.password) status = smpp.ESME_RINVPASWD;
	emit({event: 'bind', command: pdu.command, system_id: pdu.system_id, seq: pdu.sequence_number,
		interface_version: pdu.interface_version, status: status});
	if (!ok) {
		session.send(pdu.response({command_status: status}));
		return;
	}
	session.send(pdu.response({system_id: 'nodesmsc', sc_interface_version: 0x34}));
	session.bound = true;
	sessions.add(session);
	if (opts.moOnBind !== null) {
		sendMo(session, {text: opts.moOnBind});
	}
}

const server = smpp.createServer((session) => {
	emit({event: 'connect'});
	session.bound = false;
	for (const command of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) {
		session.on(command, (pdu) => onBind(session, pdu));
	}
	session.on('submit_sm', (pdu) => {
		if (!session.bound) {
			session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
			return;
		}
		const messageId = (nextMessageId++).toString(16).toUpperCase();
		const raw = rawShortMessage(pdu);
		session.send(pdu.response({message_id: messageId}));
		emit({
			event: 'submit_sm',
			seq: pdu.sequence_number,
			message_id: messageId,
			source_addr: pdu.source_addr,
			destination_addr: pdu.destination_addr,
			esm_class: pdu.esm_class,
			registered_delivery: pdu.registered_delivery,
			data_coding: pdu.data_coding,
			text: typeof raw === 'string' ? raw : null,
		});
		if (opts.receipts && (pdu.registered_delivery & 0x03) === 1) {
			setImmediate(() => sendReceipt(session, pdu, messageId));
		}
	});
	session.on('enquire_link', (pdu) => {
		emit({event: 'enquire_link', seq: pdu.sequence_number});
		session.send(pdu.response());
	});
	session.on('unbind', (pdu) => {
		emit({event: 'unbind', seq: pdu.sequence_number});
		session.bound = false;
		sessions.delete(session);
		session.send(pdu.response(), () => session.close());
	});
	session.on('pdu', (pdu) => {
		const handled = ['bind_transceiver', 'bind_transmitter', 'bind_receiver', 'submit_sm',
			'enquire_link', 'unbind'];
		if (handled.includes(pdu.command)) return;
		// Responses to our requests are reported by their callbacks; anything else is logged.
		if (pdu.command === 'deliver_sm_resp') return;
		if (pdu.command === 'enquire_link_resp') return;
		emit({event: 'pdu', command: pdu.command, seq: pdu.sequence_number,
			status: pdu.command_status});
		if (pdu.command === 'unknown') session.send(pdu.response());
	});
	session.on('error', (err) => emit({event: 'error', message: String(err && err.message)}));
	session.on('close', () => {
		sessions.delete(session);
		emit({event: 'close'});
	});
});

function sendEnquireLink(session) {
	const pdu = new smpp.PDU('enquire_link', {});
	session.send(pdu, (resp) => {
		emit({event: 'resp', command: resp.command, what: 'enquire_link',
			seq: resp.sequence_number, status: resp.command_status});
	});
	emit({event: 'sent', what: 'enquire_link', seq: pdu.sequence_number});
}

server.on('error', (err) => {
	emit({event: 'fatal', message: String(err && err.message)});
	process.exit(2);
});

server.listen(opts.port, '127.0.0.1', () => {
	emit({event: 'listening', port: server.address().port});
});

readline.createInterface({input: process.stdin}).on('line', (line) => {
	if (!line.trim()) return;
	let cmd;
	try {
		cmd = JSON.parse(line);
	} catch (e) {
		emit({event: 'error', message: 'bad command: ' + line});
		return;
	}
	if (cmd.cmd === 'mo') {
		for (const session of sessions) sendMo(session, cmd);
	} else if (cmd.cmd === 'enquire_link') {
		for (const session of sessions) sendEnquireLink(session);
	} else if (cmd.cmd === 'exit') {
		process.exit(0);
	} else {
		emit({event: 'error', message: 'unknown command: ' + line});
	}
}).on('close', () => process.exit(0));
