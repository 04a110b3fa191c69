// A small JSON parser that remembers where things are, so an API error's `loc`
// (["body", "model", "arch"]) can be pointed at in the editor's text.

export class JsonSyntaxError extends Error {
  constructor(message, offset) {
    super(message);
    this.offset = offset;
  }
}

/** Parse `text`; returns the tree: {type, start, end, value?, members?: Map(key -> {keyStart,
 *  node}), items?: [node]}. Throws JsonSyntaxError with the offset of the problem. */
export function parseWithPositions(text) {
  let i = 0;
  const fail = (message) => {
    throw new JsonSyntaxError(message, Math.min(i, text.length));
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const string = () => {
    const start = i;
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i++;
      else if (text[i] === "\n") fail("Unterminated string");
      i++;
    }
    if (text[i] !== '"') fail("Unterminated string");
    i++;
    try {
      return { start, value: JSON.parse(text.slice(start, i)) };
    } catch {
      i = start;
      return fail("Invalid string escape");
    }
  };
  const value = () => {
    ws();
    const start = i;
    const c = text[i];
    if (c === "{") {
      i++;
      const members = new Map();
      ws();
      if (text[i] === "}") return (i++, { type: "object", start, end: i, members });
      for (;;) {
        ws();
        if (text[i] !== '"') fail("Expected a property name in double quotes");
        const key = string();
        ws();
        if (text[i] !== ":") fail("Expected ':' after the property name");
        i++;
        const node = value();
        members.set(key.value, { keyStart: key.start, node });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") return (i++, { type: "object", start, end: i, members });
        fail("Expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items = [];
      ws();
      if (text[i] === "]") return (i++, { type: "array", start, end: i, items });
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") return (i++, { type: "array", start, end: i, items });
        fail("Expected ',' or ']'");
      }
    }
    if (c === '"') {
      const s = string();
      return { type: "string", start, end: i, value: s.value };
    }
    const literal = /^(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!literal) fail(i >= text.length ? "Unexpected end of the text" : `Unexpected '${c}'`);
    i += literal[0].length;
    return { type: "literal", start, end: i, value: JSON.parse(literal[0]) };
  };
  const root = value();
  ws();
  if (i < text.length) fail("Unexpected text after the JSON value");
  return root;
}

/** Where an error's `loc` points in the text: the offset of the deepest key or item that
 *  exists, and the readable path of what matched ("model.hidden[1]"). Segments that are not
 *  in the JSON (pydantic's union tags such as "mlp" or "list") are skipped. */
export function locate(root, loc) {
  let node = root;
  let offset = root.start;
  let path = "";
  for (const segment of loc) {
    if (node.type === "object" && node.members.has(String(segment))) {
      const member = node.members.get(String(segment));
      offset = member.keyStart;
      node = member.node;
      path += path ? `.${segment}` : String(segment);
    } else if (node.type === "array" && Number.isInteger(segment) && segment < node.items.length) {
      node = node.items[segment];
      offset = node.start;
      path += `[${segment}]`;
    }
  }
  return { offset, path };
}

/** 1-based line and column of an offset. */
export function lineOf(text, offset) {
  let line = 1;
  let last = -1;
  for (let k = 0; k < offset && k < text.length; k++) {
    if (text[k] === "\n") ((line += 1), (last = k));
  }
  return { line, column: offset - last };
}
