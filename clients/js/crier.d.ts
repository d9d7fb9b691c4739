// Type declarations of crier's browser client (crier.js, served by crier at /crier.js).

/** Where a feed's connection stands. */
export type State = "connecting" | "live" | "reconnecting" | "closed";

/** How this tab reaches the stream it shares with the origin's other tabs. */
export type Sharing =
  | "worker" // a SharedWorker holds the stream
  | "leader" // this tab holds it and relays it to the others
  | "follower" // another tab holds it and relays it here
  | "none"; // this tab has a stream of its own

export interface Options {
  /** The stream's URL. Default "/events" (the page's own crier). */
  url?: string;
  /** Topics to follow. Broadcasts and presence events come whatever the topics. */
  topics?: string[];
  /** A JWT for private topics and for the stream's user; sent as Authorization: Bearer. */
  token?: string;
  /** Share one stream with the origin's other tabs. Default true. */
  share?: boolean;
  /** Keep the last id in sessionStorage, so that a reload resumes. Default true. */
  resume?: boolean;
  /** The script a SharedWorker runs: crier.js itself. Default: this module's URL; give
   *  it when crier.js is bundled into another file. */
  worker?: string | URL;
}

/** One event of the stream. */
export interface CrierEvent<T = unknown> {
  /** The event's id: a decimal string. */
  id: string;
  /** Its name: "message" when the publisher named none. */
  event: string;
  /** The topic it was published to; "" for broadcasts and crier's own events. */
  topic: string;
  /** The data, parsed as JSON when it is JSON, else the text. */
  data: T;
  /** The data as it came. */
  text: string;
}

/** The data of a "missed" event: history no longer covered a resume. */
export interface Missed {
  message: string;
  lastEventId: string;
}

/** The data of a "join" or "leave" event of a room. */
export interface RoomChange {
  topic: string;
  user: string;
  members: number;
  connections: number;
  time: string;
}

/** The data of a "new_user" or "user_left" event. */
export interface Presence {
  message: string;
  subscriber: string;
  subscribers: number;
  time: string;
}

/** Who is in a room now (GET /presence). */
export interface Room {
  topic: string;
  members: number;
  users: { user: string; connections: number }[];
}

export interface Status {
  state: State;
  /** Tabs sharing the stream, this one included. */
  tabs: number;
  sharing: Sharing;
  /** Why the last attempt failed: 401 and 403 close the feed, 429 and 503 are retried. */
  error: { status: number; message: string } | null;
  /** When reconnecting: milliseconds until the next attempt. */
  wait: number;
  /** Followed topics known to be rooms (a join or leave came for them). */
  rooms: string[];
}

export interface Feed extends Readonly<Status> {
  /** The topics this tab follows. */
  readonly topics: string[];
  /** Calls fn with every event of that name on this tab's topics; "*" for every event.
   *  Returns a function that removes it. */
  on(name: "missed", fn: (e: CrierEvent<Missed>) => void): () => void;
  on(name: "join" | "leave", fn: (e: CrierEvent<RoomChange>) => void): () => void;
  on(name: "new_user" | "user_left", fn: (e: CrierEvent<Presence>) => void): () => void;
  on<T = unknown>(name: string, fn: (e: CrierEvent<T>) => void): () => void;
  /** Calls fn with the status whenever it changes. Returns a function that removes it. */
  onStatus(fn: (s: Status) => void): () => void;
  /** The status now. */
  status(): Status;
  /** Follows other topics from now on. */
  setTopics(topics: string[]): void;
  /** Who is in a room now; null when the topic is not a room. */
  presence(topic: string): Promise<Room | null>;
  /** Leaves the stream; the last tab to leave closes it. */
  close(): void;
}

/** Opens, or joins, the browser's shared stream and returns this tab's feed. */
export function connect(options?: Options): Feed;
