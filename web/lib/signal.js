// rtc-signaller 6.x messages: core's `signal`.

import { parseJson } from './values.js';

/** Writes a JSON value for a signalling part: `|` escaped as `\u007c`. */
function part(v) {
  return JSON.stringify(v).replace(/\|/g, '\\u007c');
}

/** Encodes `/cmd|sender|args...`, optionally wrapped as `/to|target|...`. */
export function encodeSignal(command, sender, args = [], to = null) {
  let s = to ? `/to|${to}|` : '';
  s += `/${command}`;
  if (sender !== null) s += `|${sender}`;
  for (const a of args) s += `|${typeof a === 'string' ? a : part(a)}`;
  return s;
}

/**
 * Parses a signalling text: `{to, command, sender, args}` where JSON arguments are parsed
 * (a raw `|` inside JSON from an original client is re-joined, at most 8 times). Returns
 * null for text that is not a message.
 */
export function parseSignal(text) {
  if (typeof text !== 'string' || text.length > 65536 || !text.startsWith('/')) return null;
  let parts = text.split('|');
  if (parts.length > 256) return null;
  let to = null;
  if (parts[0] === '/to') {
    if (parts.length < 3) return null;
    to = parts[1];
    parts = parts.slice(2);
  }
  if (!parts[0].startsWith('/') || parts[0].length < 2) return null;
  const command = parts[0].slice(1);
  const rest = parts.slice(1);
  // `/roominfo|{json}` has no sender.
  let sender = null;
  if (rest.length && !/^[[{]/.test(rest[0])) sender = rest.shift();
  const args = [];
  let joins = 0;
  for (let i = 0; i < rest.length; i++) {
    let p = rest[i];
    if (/^[[{"]/.test(p)) {
      let v;
      for (;;) {
        try {
          v = parseJson(p);
          break;
        } catch {
          if (i + 1 < rest.length && joins < 8) {
            p += `|${rest[++i]}`;
            joins++;
          } else {
            v = undefined;
            break;
          }
        }
      }
      args.push(v === undefined ? p : v);
    } else {
      args.push(p);
    }
  }
  return { to, command, sender, args };
}
