'use strict'
// Writes core/tests/vectors/json.json: what Node's JSON.parse / JSON.stringify /
// String(number) and real scuttlebutt 5.6.15 produce, for the Rust codecs to match.
//
//   node gen-vectors.js
//
// Sections:
//   values      {input, output}            output = JSON.stringify(JSON.parse(input))
//   errors      {input, js_accepts[, js_output]}  texts the Rust decoder must reject
//   numbers     {input, output, stringify, bits}  output = String(JSON.parse(input)),
//                                          bits = the float64, 16 hex digits, big-endian
//   updates     {line, key, value, ts, ts_bits, source}  a scuttlebutt update line
//   digests     {line, id, clock}          a scuttlebutt digest line
//   digests_meta {line, id, clock, meta}   one made with createStream({meta}) (unused by rtc-mesh)
//   transcript  [{from, step, chunk}]      chunks two real Models exchanged (wall-clock ts)
//   transcript_final {A, B, A_sources, B_sources}  toJSON() and clocks after the exchange
// Everything is deterministic except the transcript's timestamps.

const fs = require('fs')
const path = require('path')
const Model = require('scuttlebutt/model')
const SB_VERSION = require('scuttlebutt/package.json').version

const OUT = path.join(__dirname, '..', 'core', 'tests', 'vectors', 'json.json')

// ---------------------------------------------------------------- helpers
function bitsOf (x) {
  const dv = new DataView(new ArrayBuffer(8))
  dv.setFloat64(0, x)
  let s = ''
  for (let i = 0; i < 8; i++) s += dv.getUint8(i).toString(16).padStart(2, '0')
  return s
}
function fromBits (hi, lo) {
  const dv = new DataView(new ArrayBuffer(8))
  dv.setUint32(0, hi >>> 0)
  dv.setUint32(4, lo >>> 0)
  return dv.getFloat64(0)
}
function mulberry32 (a) {
  return function () {
    a |= 0
    a = (a + 0x6D2B79F5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0)
  }
}
function jsAccepts (text) {
  try {
    JSON.parse(text)
    return true
  } catch (e) {
    return false
  }
}
function hasLoneSurrogate (s) {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?:^|[^\ud800-\udbff])[\udc00-\udfff]/.test(s)
}

// ---------------------------------------------------------------- values
const values = []
function addValue (input) {
  const output = JSON.stringify(JSON.parse(input))
  if (hasLoneSurrogate(input)) throw new Error('lone surrogate in a value vector: ' + input)
  values.push({ input, output })
}

// key order: array-index keys ("0".."4294967294") ascending first, then insertion order
const ORDER = '{"b":1,"a":2,"1":3,"0":4,"01":5,"-1":6,"4294967294":7,"4294967295":8,"1.5":9,"10":10,"2":11}'
addValue(ORDER)
addValue('[' + ORDER + ',' + ORDER + ']')
addValue('{"outer":' + ORDER + ',"9":' + ORDER + ',"x":[' + ORDER + ']}')
addValue('{"z":{"y":{"3":"c","1":"a","x":{"b":0,"0":1}}}}')
addValue('{"4294967296":1,"9007199254740991":2,"1e3":3,"+1":4,"1 ":5," 1":6,"00":7,"0":8,"-0":9,"0.0":10,"4294967293":11}')
addValue('{"a":1,"A":2,"_":3,"~":4,"":5,"aa":6}')
addValue('{"é":1,"e":2,"日本":3,"😀":4,"\\u00e9x":5}')
// duplicate keys: the last value wins, at the position of the first
addValue('{"a":1,"b":2,"a":3}')
addValue('{"1":1,"0":2,"1":3}')
addValue('{"a":{"x":1},"b":2,"a":{"y":2}}')
addValue('{"b":1,"a":2,"b":null}')
addValue('[{"k":1,"k":2},{"k":[1],"j":0,"k":{"z":true}}]')
// strings
addValue('"plain"')
addValue('""')
addValue('"quote \\" backslash \\\\ slash / escaped slash \\/"')
addValue('"\\b\\f\\n\\r\\t"')
for (let c = 0; c < 0x20; c++) addValue('"\\u' + c.toString(16).padStart(4, '0') + '"')
addValue('"\\u007f"')
addValue('"\u007f"')
addValue('"' + Array.from({ length: 0x20 }, (_, c) => '\\u' + c.toString(16).padStart(4, '0').toUpperCase()).join('') + '\\u007F"')
addValue('"a\\u0000b"')
addValue('"\\u2028\\u2029"')
addValue('"\u2028\u2029"')
addValue('"\\ud83d\\ude00"')
addValue('"\\uD83D\\uDE00"')
addValue('"😀"')
addValue('"a😀b\\ud83d\\ude00c"')
addValue('"\\u0041\\u00e9\\u4e2d\\uffff\\ufffe"')
addValue('"pipe | and \\u007c"')
addValue('"/announce|a|{\\"id\\":\\"a\\"}"')
addValue('"\\"SYNC\\""')
addValue('"SYNC"')
addValue('{"\\n":"\\t","\\u0000":"x","\\"":"\\\\"}')
addValue('{"|":"|"}')
// containers, literals
addValue('{}')
addValue('[]')
addValue('[{}, [], [[]], {"a":{}}]')
addValue('true')
addValue('false')
addValue('null')
addValue('[true,false,null]')
addValue('{"t":true,"f":false,"n":null}')
// numbers inside containers
addValue('[0,-0,1.0,1e2,1E2,1e+2,-1.5e-3,0.1,1e21,1E+21,1e-7,123456789012345678901234567890,5e-324,1.7976931348623157e308]')
addValue('{"ts":1795713892493.001,"n":-0.0,"big":1e300,"i":9007199254740993}')
addValue('[[1,[2,[3,[4.5e-10]]]]]')
// whitespace in input
addValue('  { "a" : [ 1 , 2 ] , "b" :\t\n\r true }  ')
addValue('\n\r\t [ ]\n')
addValue(' "x" ')
addValue(' 12 ')
// deep nesting (depth 20)
addValue('['.repeat(20) + ']'.repeat(20))
addValue('['.repeat(19) + '1' + ']'.repeat(19))
{
  let s = '0'
  for (let i = 19; i >= 0; i--) s = '{"d' + i + '":' + s + '}'
  addValue(s)
  let m = '"leaf"'
  for (let i = 0; i < 20; i++) m = (i % 2 ? '{"k":' + m + ',"1":' + i + '}' : '[' + i + ',' + m + ']')
  addValue(m)
}
// a value like those rtc-mesh stores
addValue('{"nested":[1,"x"]}')
addValue('{"n":1,"s":"v1"}')
addValue('{"id":"peerA","room":"r","agent":"rtc-mesh","codecs":["postcard","json"]}')

// ---------------------------------------------------------------- errors
const errors = []
function addError (input) {
  const e = { input, js_accepts: jsAccepts(input) }
  if (e.js_accepts) e.js_output = JSON.stringify(JSON.parse(input))
  errors.push(e)
}
// lone surrogates (JS accepts them; our decoder rejects)
addError('"\\ud800"')
addError('"\\udc00x"')
addError('{"\\ud800":1}')
addError('"\\udfff"')
addError('"\\udbff"')
addError('"\\ude00\\ud83d"')
addError('"\\ud83d\\u0041"')
addError('"x\\ud83d"')
addError('["\\ud800",1]')
addError('{"a":{"b":"\\udc00"}}')
// numbers out of range (JS: Infinity, stringified as null)
addError('1e400')
addError('-1e400')
addError('[1e309]')
// invalid JSON
for (const s of ['[1,]', '{"a"}', '01', 'NaN', "'x'", '-01', '00', '1.', '.5', '+1', '-', '1e', '1e+', '0x10',
  'Infinity', '-Infinity', 'undefined', 'tru', 'nul', '', ' ', '[', ']', '{', '{"a":1,}', '{,}', '[,1]', '[1 2]',
  '{"a" 1}', '{a:1}', '{"a":1 "b":2}', '"abc', '"\\x41"', '"\\u12"', '"\\u12g4"', '"\\a"', '"\\\'"',
  '"tab\there"', '"nl\nhere"', '"nul\u0000here"', '"\u001f"', '{} x', '{}{}', '[]]', '1 2', '"a" "b"',
  '\u00a0 1', '\ufeff1', '[1,,2]', '{"a":}', '{:1}', '{"a"::1}', 'True', 'NULL']) {
  addError(s)
}

// ---------------------------------------------------------------- numbers
const numbers = []
const seenNum = new Set()
function addNumber (input) {
  if (seenNum.has(input)) return
  seenNum.add(input)
  const x = JSON.parse(input)
  if (typeof x !== 'number' || !isFinite(x)) throw new Error('not a finite JSON number: ' + input)
  numbers.push({ input, output: String(x), stringify: JSON.stringify(x), bits: bitsOf(x) })
}
for (const s of ['0', '-0', '0.0', '-0.0', '0e0', '0E-10', '-0e+5', '1', '-1', '0.1', '0.2', '0.3', '1.5', '-1.5',
  '100', '1e2', '1E2', '1e+2', '100e-2', '0.1e1', '10.0', '1.0', '4.35', '1e20', '1e21', '1.2345e21',
  '123456789012345680000', '123456789012345678901', '999999999999999900000', '999999999999999999999',
  '1e-6', '1e-7', '1.5e-7', '0.000001', '0.0000001', '0.0000015', '5e-324', '4.9406564584124654e-324',
  '2.4703282292062328e-324', '2.2250738585072014e-308', '2.2250738585072009e-308', '1.7976931348623157e308',
  '9007199254740991', '9007199254740992', '9007199254740993', '-9007199254740993', '18446744073709551616',
  '1795713892493', '1795713892493.001', '1795713877118.001', '1795713876272', '1400000000000', '1387000000000',
  '1e300', '-1e-300', '123e-20', '2', '3', '1e100', '1e-100', '1e22', '1e23', '1e-5', '1.1e-6', '12345678.9',
  '0.1234567890123456789', '3.141592653589793238462643383279', '2.718281828459045',
  '1.00000000000000011102230246251565404236316680908203125', '1.0000000000000002', '0.30000000000000004',
  '4294967295', '4294967296', '2147483647', '-2147483648', '1e15', '1e16', '1e17', '123456789012345.6',
  '0.5', '0.25', '0.125', '1e-323', '1.5e300', '-1.7976931348623157e308', '8.98846567431158e307', '100.5',
  '1000000000000000128', '1000000000000000129', '0.000001234', '1.234e-7', '6.02214076e23', '1.602176634e-19']) {
  addNumber(s)
}
// arithmetic results, given as JavaScript's String() of them
for (const x of [0.1 + 0.2, 0.2 + 0.3, 0.7 + 0.1, 1 - 0.9, 2 / 3, 1 / 3, 10 / 3, 100 / 3, 1 / 7, 22 / 7,
  Math.PI, Math.E, Math.SQRT2, Math.LN2, Math.pow(2, 53), Math.pow(2, 53) + 2, Math.pow(2, 64), Math.pow(2, -1074),
  Math.pow(2, -1022), Math.pow(2, 1023), 1.1 * 1.1, 3 * 1.1, 0.1 * 3, 1e21 / 3, 1e-7 / 3, 5e-324 * 3,
  1795713892493 + 1 / 1001, 1795713892493 + 2 / 1002, 1795713892493 + 3 / 1003, 1795713892493 + 999 / 1999,
  1400000000000 + 5, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, Number.EPSILON, Number.MAX_VALUE,
  Number.MIN_VALUE, 1 + Number.EPSILON, 123456.789e3, -0.000001 / 7]) {
  addNumber(String(x))
}
// ~300 pseudo-random doubles, fixed seed: random bit patterns (all magnitudes), plus
// random values in a few everyday ranges
{
  const rnd = mulberry32(0x5eed5eed)
  let n = 0
  while (n < 240) {
    const hi = rnd()
    const lo = rnd()
    if (((hi >>> 20) & 0x7ff) === 0x7ff) continue // NaN / Infinity
    addNumber(String(fromBits(hi, lo)))
    n++
  }
  for (let i = 0; i < 20; i++) { // subnormals
    addNumber(String(fromBits(rnd() & 0x800fffff, rnd())))
  }
  for (let i = 0; i < 20; i++) { // timestamps with a fraction
    addNumber(String(1.7e12 + rnd() / 4294967296 * 1e11))
  }
  for (let i = 0; i < 20; i++) { // around the 1e21 / 1e-7 notation switches
    const e = [20, 21, -6, -7][i % 4]
    addNumber(String((1 + rnd() / 4294967296 * 9) * Math.pow(10, e)))
  }
}
for (const e of numbers) {
  if (String(JSON.parse(e.output)) !== e.output) throw new Error('String() does not round-trip: ' + e.output)
}

// ---------------------------------------------------------------- updates and digests
// Lines are what a real scuttlebutt stream writes: we feed a Model the update, open a
// stream, send it a digest with an empty clock and capture what it sends back.
function captureStream (model, remoteDigest, opts) {
  const s = model.createStream(opts)
  const chunks = []
  s.on('data', function (c) { chunks.push(c) })
  s.resume() // flush the buffered digest now instead of on nextTick
  if (remoteDigest) s.write(JSON.stringify(remoteDigest) + '\n')
  return chunks
}
const updates = []
const TS0 = 1795713892493
const updateSpecs = [
  ['k', 'v', TS0, 'A'],
  ['k1', 'v1', TS0 + 1 / 1001, 'A'],
  ['k2', 2, TS0 + 2 / 1002, 'A'],
  ['k3', null, TS0 + 3 / 1003, 'A'],
  ['preA', 1, 1795713876272, 'A'],
  ['preB', { nested: [1, 'x'] }, 1795713876273, 'B'],
  ['lastjoin', 1387000000000, 1795713940551, 'A'],
  ['name', 'Bob', 1795713940705, 'B'],
  ['', '', 1, 'x'],
  ['del', null, 1795713877118.001, '83DE1F1C197390C37458941BCEE24B4ADB44AF7'],
  ['key-0000000001', { n: 1, s: 'v1' }, TS0, 'aaaaaaaaaaaaaaaa'],
  ['unicode é 日本 😀', 'x\u2028y\u0000z\u007f', 1400000000000.5, 'peer.0123456789abcdef'],
  ['quote"back\\slash', ['a', { b: [true, false, null] }], 1e12, 'p-1_2~3.4'],
  ['pipe|key', 'pipe|value', 1795713892493.002, 'p'],
  ['num', -0, 2 ** 40 + 0.25, 's'],
  ['float', 0.1 + 0.2, 1795713892493.999, 's'],
  ['big', 1e21, 5e-324, 's'],
  ['order', { b: 1, a: 2, 1: 3, 0: 4 }, 1795713892494, 's'],
  ['1', 'numeric-looking key', 1795713892495, '2'],
  ['nested', { a: { b: { c: { d: [[[]]] } } } }, 1795713892496, 's'],
  ['bool', false, 1795713892497, 's'],
  ['empty', {}, 1795713892498, 's'],
  ['emptyarr', [], 1795713892499, 's']
]
for (const [key, value, ts, source] of updateSpecs) {
  const u = [[key, value], ts, source]
  const expected = JSON.stringify(u) + '\n'
  const m = new Model('gen')
  m._update(JSON.parse(JSON.stringify(u)))
  const chunks = captureStream(m, { id: 'R', clock: {} })
  // chunks: [our digest, the update, "SYNC"]
  if (chunks.length !== 3 || chunks[1] !== expected || chunks[2] !== '"SYNC"\n') {
    throw new Error('unexpected scuttlebutt output for ' + expected + ': ' + JSON.stringify(chunks))
  }
  updates.push({ line: chunks[1], key, value, ts, ts_bits: bitsOf(ts), source })
}

const digests = []
const digestsMeta = [] // opts.meta digests: scuttlebutt can send them, rtc-mesh never did
function addDigest (id, sourceUpdates, meta) {
  const m = new Model(id)
  for (const [src, ts] of sourceUpdates) m._update([['k-' + src, 1], ts, src])
  const chunks = captureStream(m, null, meta ? { meta } : undefined)
  if (chunks.length !== 1) throw new Error('expected one digest chunk')
  const d = { line: chunks[0], id, clock: JSON.parse(chunks[0]).clock }
  if (meta) d.meta = meta
  ;(meta ? digestsMeta : digests).push(d)
}
addDigest('A', [])
addDigest('B', [['B', 1795713876273]])
addDigest('A', [['A', 1795713876272], ['B', 1795713876273.001]])
addDigest('Z', [['C', 3], ['A', 1], ['B', 2], ['zz', 1795713892493.001], ['aa', 1795713892493.002]])
addDigest('83DE1F1C197390C37458941BCEE24B4ADB44AF7', [['19228DEEBDEB78A6428E21B24C1D432D1C0B832', 1795713940551]])
addDigest('n', [['b', 1], ['2', 2], ['1', 3], ['a', 4], ['01', 5]]) // numeric-looking source ids move first
addDigest('peer.0123456789abcdef', [['peer.0123456789abcdef', 1400000000000.5], ['x|y', 7]])
addDigest('A', [['A', 1]], { room: 'r', n: 1 })

// ---------------------------------------------------------------- transcript
function transcript (cb) {
  const A = new Model('A')
  const B = new Model('B')
  const log = []
  let step = 'pre'
  A.set('preA', 1)
  B.set('preB', { nested: [1, 'x'] })
  step = 'connect'
  const sa = A.createStream()
  const sb = B.createStream()
  sa.on('data', function (c) { log.push({ from: 'A', step, chunk: c }) })
  sb.on('data', function (c) { log.push({ from: 'B', step, chunk: c }) })
  let synced = 0
  const onSync = function () {
    if (++synced === 2) setTimeout(live, 5)
  }
  sa.on('sync', onSync)
  sb.on('sync', onSync)
  sa.pipe(sb).pipe(sa)
  function live () {
    step = "A.set('k1','v1')"
    A.set('k1', 'v1')
    step = "B.set('k1','v2')"
    B.set('k1', 'v2')
    step = "A.set('del','x')"
    A.set('del', 'x')
    step = "A.set('del',null)"
    A.set('del', null)
    setTimeout(function () {
      cb(log, {
        A: A.toJSON(),
        B: B.toJSON(),
        A_sources: A.sources,
        B_sources: B.sources,
        A_get_del: A.get('del') === undefined ? 'undefined' : A.get('del'),
        B_keys: B.keys()
      })
    }, 20)
  }
}

// ---------------------------------------------------------------- write
transcript(function (log, final) {
  const doc = {
    generated_by: 'node ' + process.version + ' JSON.stringify; scuttlebutt ' + SB_VERSION,
    values,
    errors,
    numbers,
    updates,
    digests,
    digests_meta: digestsMeta,
    transcript: log,
    transcript_final: final
  }
  // one entry per line, for readable diffs
  let text = '{\n'
  const keys = Object.keys(doc)
  keys.forEach(function (k, i) {
    const v = doc[k]
    text += JSON.stringify(k) + ': '
    if (Array.isArray(v)) {
      text += '[\n' + v.map(function (e) { return '  ' + JSON.stringify(e) }).join(',\n') + '\n]'
    } else {
      text += JSON.stringify(v)
    }
    text += (i + 1 < keys.length ? ',' : '') + '\n'
  })
  text += '}\n'
  // the whole file must itself be plain JSON any strict decoder reads
  if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(doc)) throw new Error('file does not round-trip')
  if (hasLoneSurrogate(text)) throw new Error('lone surrogate in the output file')
  fs.mkdirSync(path.dirname(OUT), { recursive: true })
  fs.writeFileSync(OUT, text)
  process.stdout.write('wrote ' + path.relative(process.cwd(), OUT) + ': ' + values.length + ' values, ' +
    errors.length + ' errors, ' + numbers.length + ' numbers, ' + updates.length + ' updates, ' +
    digests.length + '+' + digestsMeta.length + ' digests, ' + log.length + ' transcript chunks\n')
})
