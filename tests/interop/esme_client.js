#!/usr/bin/env node
// An ESME written with the npm `smpp` package (independent of smsgw), for the interop tests
// to bind against our SMSC side (the simulator, or gateway/smpp's Session in the SMSC role).
//
// Usage: node esme_client.js --port N [--host H] [--system-id ID] [--password PW]
//                            [--submit JSON] [--enquire-link-ms N] [--stop-and-wait]
//   --submit: a JSON array of {"ref":..,"text":..,"data_coding":0|8,"udh":hex,
//             "schedule_delivery_time":..}, sent after the bind with registered_delivery 1
//             ("udh": a concatenation header, set as the package sets it, with the UDHI bit).
//   --stop-and-wait: send each submit only once the previous one is answered (window 1).
//
// Prints one JSON object per line on stdout:
//   {"event":"bound","system_id":..}  or  {"event":"bind_failed","status":N} (then exits)
//   {"event":"submit_sm_resp","ref":..,"status":..,"message_id":..}
//   {"event":"deliver_sm","receipt":bool,"receipted_message_id":..,"message_state":..,
//    "text":..,"data_coding":..,"source_addr":..}             answered with deliver_sm_resp
//   {"event":"enquire_link_resp","status":..}                 answers to our keep-alive
//   {"event":"enquire_link"}                                  the SMSC's, answered
//   {"event":"unbind_resp","status":..}  {"event":"close"}
// Reads JSON commands on stdin: {"cmd":"unbind"} unbinds and exits once closed;
//   {"cmd":"query_sm"|"cancel_sm","message_id":..} and {"cmd":"replace_sm","message_id":..,
//   "text":..,"schedule_delivery_time":..} send that request and print
//   {"event":"<cmd>_resp","status":..,"message_state":..,"final_date":..}.
'use strict';

const readline = require('readline');
const smpp = require('smpp');

function parseArgs(argv) {
	const opts = {host: '127.0.0.1', port: 0, systemId: 'smsgw', password: 'secret',
		submit: [], enquireLinkMs: 0, stopAndWait: false};
	for (let i = 2; i < argv.length; i++) {
		const arg = argv[i];
		const next = () => argv[++i];
		if (arg === '--host') opts.host = next();
		else if (arg === '--port') opts.port = Number(next());
		else if (arg === '--system-id') opts.systemId = next();
		else if (arg === '--password') opts.password = next();
		else if (arg === '--submit') opts.submit = JSON.parse(next());
		else if (arg === '--enquire-link-ms') opts.enquireLinkMs = Number(next());
		else if (arg === '--stop-and-wait') opts.stopAndWait = true;
		else throw new Error('unknown argument ' + arg);
	}
	return opts;
}

const opts = parseArgs(process.argv);

function emit(obj) {
	process.stdout.write(JSON.stringify(obj) + '\n');
}

const session = smpp.connect({host: opts.host, port: opts.port});
let keepAlive = null;

session.on('error', (err) => emit({event: 'error', message: String(err && err.message)}));
session.on('close', () => {
	if (keepAlive) clearInterval(keepAlive);
	emit({event: 'close'});
	process.exit(0);
});

session.on('deliver_sm', (pdu) => {
	const sm = pdu.short_message;
	const text = sm && typeof sm === 'object' && !Buffer.isBuffer(sm) ? sm.message : sm;
	emit({
		event: 'deliver_sm',
		seq: pdu.sequence_number,
		receipt: (pdu.esm_class & 0x3C) === 0x04,
		esm_class: pdu.esm_class,
		receipted_message_id: pdu.receipted_message_id === undefined ?
			null : pdu.receipted_message_id,
		message_state: pdu.message_state === undefined ? null : pdu.message_state,
		data_coding: pdu.data_coding,
		source_addr: pdu.source_addr,
		destination_addr: pdu.destination_addr,
		text: typeof text === 'string' ? text : null,
	});
	session.send(pdu.response());
});

session.on('enquire_link', (pdu) => {
	emit({event: 'enquire_link', seq: pdu.sequence_number});
	session.send(pdu.response());
});

session.on('enquire_link_resp', (pdu) => {
	emit({event: 'enquire_link_resp', seq: pdu.sequence_number, status: pdu.command_status});
});

session.on('unbind', (pdu) => {
	emit({event: 'unbind', seq: pdu.sequence_number});
	session.send(pdu.response(), () => session.close());
});

session.on('generic_nack', (pdu) => {
	emit({event: 'generic_nack', seq: pdu.sequence_number, status: pdu.command_status});
});

session.bind_transceiver({system_id: opts.systemId, password: opts.password}, (pdu) => {
	if (pdu.command_status !== 0) {
		emit({event: 'bind_failed', status: pdu.command_status, command: pdu.command});
		session.close();
		return;
	}
	emit({event: 'bound', system_id: pdu.system_id, command: pdu.command});
	const submitOne = (index) => {
		if (index >= opts.submit.length) return;
		const item = opts.submit[index];
		session.submit_sm({
			source_addr_ton: 5,
			source_addr: 'SMSGW',
			dest_addr_ton: 1,
			dest_addr_npi: 1,
			destination_addr: item.destination_addr || '447700900123',
			registered_delivery: 1,
			esm_class: 0,
			data_coding: item.data_coding === undefined ? 0 : item.data_coding,
			schedule_delivery_time: item.schedule_delivery_time || '',
			short_message: item.udh ?
				{udh: Buffer.from(item.udh, 'hex'), message: item.text} : item.text,
		}, (resp) => {
			emit({event: 'submit_sm_resp', ref: item.ref, seq: resp.sequence_number,
				status: resp.command_status, message_id: resp.message_id || null});
			if (opts.stopAndWait) submitOne(index + 1);
		});
		if (!opts.stopAndWait) submitOne(index + 1);
	};
	submitOne(0);
	if (opts.enquireLinkMs > 0) {
		keepAlive = setInterval(() => session.enquire_link(), opts.enquireLinkMs);
	}
});

readline.createInterface({input: process.stdin}).on('line', (line) => {
	let cmd;
	try {
		cmd = JSON.parse(line);
	} catch (e) {
		emit({event: 'error', message: 'bad command: ' + line});
		return;
	}
	if (cmd.cmd === 'query_sm' || cmd.cmd === 'cancel_sm' || cmd.cmd === 'replace_sm') {
		const params = {message_id: cmd.message_id, source_addr_ton: 5, source_addr: 'SMSGW'};
		if (cmd.cmd === 'replace_sm') {
			params.short_message = cmd.text;
			params.schedule_delivery_time = cmd.schedule_delivery_time || '';
			params.registered_delivery = 1;
		}
		session[cmd.cmd](params, (resp) => {
			emit({event: cmd.cmd + '_resp', status: resp.command_status,
				message_id: resp.message_id === undefined ? null : resp.message_id,
				message_state: resp.message_state === undefined ? null : resp.message_state,
				final_date: resp.final_date ? String(resp.final_date) : null});
		});
	} else if (cmd.cmd === 'unbind') {
		if (keepAlive) clearInterval(keepAlive);
		session.unbind((resp) => {
			emit({event: 'unbind_resp', status: resp.command_status});
			session.close();
		});
	}
}).on('close', () => session.destroy());
