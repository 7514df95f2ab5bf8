// EXPOSE port specs as BuildKit's dockerfile2llb/convert_expose.go parses them:
// [[ip:]hostPort:]containerPort[-end][/proto] -> "port/proto" per port, in order.

export class PortError extends Error {}

function portNumber(raw: string): number {
  if (raw === '') throw new PortError('value is empty');
  if (!/^[-+]?\d+$/.test(raw)) throw new PortError('invalid syntax');
  const n = Number(raw);
  if (n < 0 || n > 65535) throw new PortError('value out of range (0–65535)');
  return n;
}

function portRange(ports: string): [number, number] {
  if (ports === '') throw new PortError('empty string specified for ports');
  const dash = ports.indexOf('-');
  const start = dash < 0 ? ports : ports.slice(0, dash);
  const end = dash < 0 ? '' : ports.slice(dash + 1);
  const s = portNumber(start);
  if (dash < 0 || start === end) return [s, s];
  const e = portNumber(end);
  if (e < s) throw new PortError(`invalid port range: ${ports}`);
  return [s, e];
}

/** portRange with BuildKit's message for the field it was given in (containerPort, hostPort). */
function fieldRange(ports: string, field: string): [number, number] {
  try {
    return portRange(ports);
  } catch {
    throw new PortError(`invalid ${field}: ${ports}`);
  }
}

function splitParts(raw: string): [string, string, string] {
  const parts = raw.split(':');
  if (parts.length === 1) return ['', '', parts[0]];
  if (parts.length === 2) return ['', parts[0], parts[1]];
  const n = parts.length;
  return [parts.slice(0, n - 2).join(':'), parts[n - 2], parts[n - 1]];
}

/** An EXPOSE word's parts as written (`proto` keeps its case, '' when not given); throws PortError on a missing port or unknown proto. */
export function portSpecParts(raw: string): { ip: string; hostPort: string; port: string; proto: string } {
  const [ip, hostPort, containerPart] = splitParts(raw);
  const slash = containerPart.indexOf('/');
  const port = slash < 0 ? containerPart : containerPart.slice(0, slash);
  const proto = slash < 0 ? '' : containerPart.slice(slash + 1);
  if (port === '') throw new PortError(`invalid port: ${JSON.stringify(raw)}: no port specified`);
  if (!['', 'tcp', 'udp', 'sctp'].includes(proto.toLowerCase())) throw new PortError(`invalid port: ${JSON.stringify(raw)}: invalid proto: ${proto}`);
  return { ip, hostPort, port, proto };
}

/** One EXPOSE word -> its "port/proto" entries; throws PortError with BuildKit's message. */
export function parsePort(raw: string): string[] {
  const { ip, hostPort, port, proto: written } = portSpecParts(raw);
  const proto = written || 'tcp';
  let host = ip;
  if (host.startsWith('[')) host = host.replace(/^\[(.*)\]$/, '$1');
  if (host !== '' && !isIp(host)) throw new PortError(`invalid IP address: ${host}`);
  const [start, end] = fieldRange(port, 'containerPort');
  if (hostPort !== '') {
    const [hs, he] = fieldRange(hostPort, 'hostPort');
    if (end - start !== he - hs && end !== start) throw new PortError(`invalid ranges specified for container and host Ports: ${port} and ${hostPort}`);
  }
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto.toLowerCase()}`);
  return out;
}

function isIp(s: string): boolean {
  return /^(\d{1,3}\.){3}\d{1,3}$/.test(s) && s.split('.').every((o) => Number(o) <= 255) || (/^[0-9a-fA-F:.]+$/.test(s) && s.includes(':'));
}
