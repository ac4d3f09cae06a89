// callscope softphone: signs the agent in, keeps the signalling WebSocket open
// (docs/softphone-protocol.md) and runs one RTCPeerConnection per call. No framework and
// no build step: this file is served as is, under a CSP that forbids inline code.
//
// The DOM is the state's only view, and tests read it: #app[data-view], #presence
// [data-presence], #connection[data-connection], #incoming[data-call-id], #call[data-state,
// data-call-id, data-muted, data-held, data-reason], #call-timer[data-seconds],
// #quality[data-quality, data-rtt-ms, data-jitter-ms, data-packets-lost].
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // Reconnect backoff of the protocol: 0.5 s doubling to 8 s.
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 8000;
  // A socket that stays silent this long after a ping is dead even if TCP has not noticed.
  const PING_EVERY_MS = 15000;
  const PONG_WITHIN_MS = 10000;
  const STATS_EVERY_MS = 2000;
  const NOTICE_MS = 8000;
  // A dial callscope never acknowledges (`dialing`) is given up after this long.
  const DIAL_REPLY_MS = 15000;
  const DTMF_DIGITS = /^[0-9*#A-D]$/;
  // ?test=1: the signalling is traced to the console (the test driver's log) and a hook
  // lets tests drop the socket.
  const TEST_MODE = new URLSearchParams(location.search).has('test');

  function trace(direction, message) {
    if (!TEST_MODE) return;
    const { sdp, ...rest } = message;
    console.debug(`ws${direction} ${JSON.stringify(rest)}${sdp ? ` (sdp ${sdp.length} bytes)` : ''}`);
  }

  const PRESENCE_TEXT = {
    available: 'Available',
    away: 'Away',
    busy: 'Busy (on a call)',
    wrap_up: 'Wrap-up',
    offline: 'Offline',
  };
  const STATE_TEXT = {
    idle: 'No call',
    dialing: 'Calling…',
    ringing: 'Ringing…',
    connecting: 'Connecting…',
    connected: 'Connected',
    ended: 'Call ended',
  };
  const REASON_TEXT = {
    normal_clearing: 'Call ended',
    remote_hangup: 'The other party hung up',
    agent_hangup: 'You hung up',
    answered_elsewhere: 'Answered elsewhere',
    caller_cancelled: 'The caller hung up',
    no_answer: 'No answer',
    rejected: 'Rejected',
    busy: 'Busy',
    unavailable: 'Unavailable',
    transferred: 'Transferred',
    media_failed: 'Audio connection failed',
    failed: 'Call failed',
    connection_lost: 'Call not placed: connection lost',
  };

  const state = {
    user: null,
    presence: 'offline',
    ws: null,
    // False once signed out: a closing socket is then not reopened.
    wsWanted: false,
    connection: 'closed',
    backoffMs: BACKOFF_MIN_MS,
    reconnectTimer: null,
    pingTimer: null,
    pongTimer: null,
    // call_id -> { view, phase, pc, stream, unsent: [candidates], placedByUs }
    calls: new Map(),
    // A dial sent but not yet given a call_id: { requestId, number, pc, stream, candidates, cancelled,
    // answer (a media_answer that came before `dialing`) }
    dialing: null,
    // The call shown in the call panel, and the ringing one in the banner.
    current: null,
    // What the panel shows after a call: { reason, peer }
    lastEnded: null,
    nextRequest: 1,
    noticeTimer: null,
    // `hello`s received: each one is a (re)connection the server accepted.
    hellos: 0,
    // request_ids of dials given up before callscope acknowledged them.
    abandonedDials: new Set(),
  };

  // ---- small helpers ----

  function requestId() {
    return `r${state.nextRequest++}`;
  }

  function showNotice(text) {
    const el = $('notice');
    el.textContent = text;
    el.hidden = false;
    clearTimeout(state.noticeTimer);
    state.noticeTimer = setTimeout(() => { el.hidden = true; }, NOTICE_MS);
  }

  function send(message) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    trace('>', message);
    ws.send(JSON.stringify(message));
    return true;
  }

  // A command the agent asked for: says so when the socket is down instead of dropping it.
  function command(message) {
    if (!send(message)) showNotice('Not connected to callscope — reconnecting, try again in a moment.');
  }

  function peerOf(view) {
    if (!view) return '';
    return view.direction === 'outbound' || (state.user && view.from === state.user.extension)
      ? view.to || ''
      : view.from || '';
  }

  function twoDigits(n) {
    return String(n).padStart(2, '0');
  }

  // ---- views ----

  function setView(view) {
    $('app').dataset.view = view;
    $('login-view').hidden = view !== 'login';
    $('phone-view').hidden = view !== 'phone';
  }

  function showLogin(message) {
    teardownAll();
    closeSocket();
    state.user = null;
    state.presence = 'offline';
    render();
    setView('login');
    const error = $('login-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('login-password').value = '';
    const domain = $('login-domain');
    const extension = $('login-extension');
    if (!domain.value) domain.value = localStorage.getItem('callscope.domain') || '';
    if (!extension.value) extension.value = localStorage.getItem('callscope.extension') || '';
    (domain.value ? (extension.value ? $('login-password') : extension) : domain).focus();
  }

  function showPhone(me) {
    state.user = me.user;
    state.presence = me.presence || state.presence;
    setView('phone');
    $('login-error').hidden = true;
    render();
    $('dial-number').focus();
    openSocket();
  }

  function render() {
    renderAgent();
    renderPresence();
    renderConnection();
    renderIncoming();
    renderCall();
  }

  function renderAgent() {
    const user = state.user || {};
    $('agent-name').textContent = user.name || '';
    $('agent-extension').textContent = user.extension ? `ext. ${user.extension}` : '';
    $('agent').dataset.extension = user.extension || '';
  }

  function renderPresence() {
    const el = $('presence');
    el.dataset.presence = state.presence;
    el.textContent = PRESENCE_TEXT[state.presence] || state.presence;
    const toggle = $('presence-toggle');
    const available = state.presence === 'available';
    toggle.setAttribute('aria-pressed', String(available));
    toggle.textContent = available ? 'Go away' : 'Go available';
    // Busy ends with the call; callscope refuses changes until then.
    toggle.disabled = state.presence === 'busy';
  }

  function renderConnection() {
    const el = $('connection');
    el.dataset.connection = state.connection;
    el.dataset.hellos = String(state.hellos);
    el.textContent = {
      open: 'Connected',
      connecting: 'Connecting…',
      reconnecting: 'Reconnecting…',
      closed: 'Disconnected',
    }[state.connection];
  }

  function ringingCall() {
    for (const call of state.calls.values()) {
      if (call.phase === 'incoming') return call;
    }
    return null;
  }

  function renderIncoming() {
    const call = ringingCall();
    const banner = $('incoming');
    const appeared = call && banner.hidden;
    banner.hidden = !call;
    banner.dataset.callId = call ? call.view.call_id : '';
    ringer(Boolean(call));
    if (!call) return;
    // A keyboard user answers with Enter; someone typing in a field is not interrupted.
    if (appeared && !typing(document.activeElement)) $('incoming-answer').focus();
    const view = call.view;
    $('incoming-from').textContent = view.from || 'Unknown number';
    $('incoming-contact').textContent = view.contact && view.contact.name ? view.contact.name : '';
    $('incoming-did').textContent = view.did || view.to || '';
    // While on a call a second one may still be taken (the first is not held automatically).
    $('incoming-answer').disabled = false;
  }

  function panelCall() {
    if (state.dialing) return { phase: 'dialing', view: { direction: 'outbound', to: state.dialing.number }, pc: state.dialing.pc };
    return state.current ? state.calls.get(state.current) || null : null;
  }

  function renderCall() {
    const panel = $('call');
    const call = panelCall();
    const phase = call ? call.phase : state.lastEnded ? 'ended' : 'idle';
    const before = panel.dataset.state;
    const view = call ? call.view : null;
    panel.dataset.state = phase;
    panel.dataset.callId = view && view.call_id ? view.call_id : '';
    panel.dataset.muted = String(Boolean(view && view.muted));
    panel.dataset.held = String(Boolean(view && view.held));
    panel.dataset.reason = !call && state.lastEnded ? state.lastEnded.reason : '';
    panel.dataset.media = call && call.pc ? 'yes' : call ? 'none' : '';

    let status = STATE_TEXT[phase];
    if (phase === 'ended') status = REASON_TEXT[state.lastEnded.reason] || `Call ended (${state.lastEnded.reason})`;
    if (view && view.held) status = 'On hold';
    if (call && !call.pc && phase === 'connected') status = 'Connected in another window';
    $('call-status').textContent = status;
    $('call-peer').textContent = call ? peerOf(view) : state.lastEnded ? state.lastEnded.peer : '';
    $('call-contact').textContent = view && view.contact && view.contact.name ? view.contact.name : '';

    const live = Boolean(call && call.view.call_id);
    const connected = phase === 'connected';
    $('call-hangup').disabled = !call;
    $('call-mute').disabled = !(connected && call.pc);
    $('call-hold').disabled = !connected;
    $('transfer-submit').disabled = !(connected && live);
    const mute = $('call-mute');
    mute.setAttribute('aria-pressed', String(Boolean(view && view.muted)));
    mute.textContent = view && view.muted ? 'Unmute' : 'Mute';
    const hold = $('call-hold');
    hold.setAttribute('aria-pressed', String(Boolean(view && view.held)));
    hold.textContent = view && view.held ? 'Resume' : 'Hold';
    $('dtmf').hidden = !connected;
    $('dial-call').disabled = Boolean(call);
    if (!connected) $('dtmf-sent').textContent = '';
    renderTimer();
    if (!call || !call.pc) resetQuality();
    // The button just pressed may have gone (Answer) or been disabled (Hang up): keep the
    // keyboard where the next action is.
    const lost = document.activeElement === document.body || (document.activeElement && document.activeElement.disabled);
    if (lost && phase !== before) {
      if (call) $('call-hangup').focus();
      else if ($('app').dataset.view === 'phone') $('dial-number').focus();
    }
  }

  function renderTimer() {
    const call = panelCall();
    const el = $('call-timer');
    let seconds = 0;
    if (call && call.phase === 'connected' && call.connectedAt) {
      seconds = Math.max(0, Math.floor((Date.now() - call.connectedAt) / 1000));
    }
    el.dataset.seconds = String(seconds);
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    el.textContent = `${h ? `${h}:` : ''}${twoDigits(m)}:${twoDigits(seconds % 60)}`;
  }

  function resetQuality() {
    const el = $('quality');
    el.dataset.quality = 'unknown';
    el.dataset.rttMs = '';
    el.dataset.jitterMs = '';
    el.dataset.packetsLost = '';
    $('quality-text').textContent = '—';
  }

  // ---- ringing ----

  // A soft two-tone ring (440 + 480 Hz, 2 s on, 4 s off) made in the page: no audio file.
  let ringContext = null;
  let ringTimer = null;
  let ringGain = null;

  function ringOnce() {
    if (!ringContext) return;
    const now = ringContext.currentTime;
    const gain = ringContext.createGain();
    gain.gain.setValueAtTime(0, now);
    gain.gain.linearRampToValueAtTime(0.08, now + 0.05);
    gain.gain.setValueAtTime(0.08, now + 1.95);
    gain.gain.linearRampToValueAtTime(0, now + 2);
    gain.connect(ringContext.destination);
    ringGain = gain;
    for (const hz of [440, 480]) {
      const osc = ringContext.createOscillator();
      osc.frequency.value = hz;
      osc.connect(gain);
      osc.start(now);
      osc.stop(now + 2);
    }
  }

  function ringer(on) {
    if (on && !ringTimer) {
      try {
        ringContext = ringContext || new AudioContext();
        ringContext.resume().catch(() => {});
        ringOnce();
        ringTimer = setInterval(ringOnce, 6000);
      } catch {
        // No audio output: the banner alone has to do.
      }
    } else if (!on && ringTimer) {
      clearInterval(ringTimer);
      ringTimer = null;
      // Silence the ring under way at once, not at the end of its 2 s.
      if (ringGain && ringContext) {
        ringGain.gain.cancelScheduledValues(ringContext.currentTime);
        ringGain.gain.setValueAtTime(0, ringContext.currentTime);
      }
    }
  }

  // ---- media ----

  async function newPeer(onCandidate) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { autoGainControl: false, echoCancellation: false, noiseSuppression: false },
      video: false,
    });
    // callscope is ICE-lite on a reachable address: no STUN or TURN is needed.
    const pc = new RTCPeerConnection({ iceServers: [] });
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    pc.onicecandidate = (event) => onCandidate(event.candidate ? event.candidate.candidate : '');
    pc.ontrack = (event) => {
      $('remote-audio').srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') showNotice('The audio connection failed.');
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    return { pc, stream, sdp: pc.localDescription.sdp };
  }

  function closePeer(holder) {
    if (!holder) return;
    if (holder.pc) {
      holder.pc.onicecandidate = null;
      holder.pc.ontrack = null;
      holder.pc.onconnectionstatechange = null;
      holder.pc.close();
      holder.pc = null;
    }
    if (holder.stream) {
      for (const track of holder.stream.getTracks()) track.stop();
      holder.stream = null;
    }
  }

  function trickle(call, candidate) {
    const message = { type: 'candidate', call_id: call.view.call_id, candidate };
    if (!send(message)) call.unsent.push(candidate);
  }

  function flushCandidates(call) {
    const pending = call.unsent.splice(0);
    for (const candidate of pending) trickle(call, candidate);
  }

  // ---- calls ----

  function newCall(view, phase, extra) {
    return Object.assign(
      { view, phase, pc: null, stream: null, unsent: [], placedByUs: false, connectedAt: null, offerSent: false },
      extra || {},
    );
  }

  function markConnected(call) {
    call.phase = 'connected';
    const answeredAt = call.view.answered_at_ms;
    // The server's clock when it says; the browser's otherwise (or if the clocks disagree
    // into the future).
    call.connectedAt = answeredAt && answeredAt <= Date.now() ? answeredAt : call.connectedAt || Date.now();
  }

  function endCall(callId, reason) {
    const call = state.calls.get(callId);
    if (!call) return;
    closePeer(call);
    state.calls.delete(callId);
    if (state.current === callId) {
      state.current = null;
      state.lastEnded = { reason, peer: peerOf(call.view) };
      pickCurrent();
    }
    render();
  }

  // After a call ends, another live one (if any) takes the panel.
  function pickCurrent() {
    if (state.current && state.calls.has(state.current)) return;
    state.current = null;
    for (const [id, call] of state.calls) {
      if (call.phase !== 'incoming') {
        state.current = id;
        return;
      }
    }
  }

  function teardownAll() {
    for (const call of state.calls.values()) closePeer(call);
    state.calls.clear();
    if (state.dialing) {
      clearTimeout(state.dialing.replyTimer);
      closePeer(state.dialing);
    }
    state.dialing = null;
    state.current = null;
    state.lastEnded = null;
  }

  async function answerCall(callId) {
    const call = state.calls.get(callId);
    if (!call || call.phase !== 'incoming') return;
    call.phase = 'connecting';
    call.placedByUs = true;
    state.current = callId;
    state.lastEnded = null;
    render();
    try {
      // Candidates wait until the offer they belong to has gone.
      const peer = await newPeer((candidate) => {
        if (call.offerSent) trickle(call, candidate);
        else call.unsent.push(candidate);
      });
      if (!state.calls.has(callId)) {
        // Ended (caller gave up, answered elsewhere) while the microphone was opening.
        closePeer(peer);
        return;
      }
      call.pc = peer.pc;
      call.stream = peer.stream;
      if (!send({ type: 'answer', call_id: callId, sdp: peer.sdp, request_id: requestId() })) {
        // Still ringing on the server: it can be answered again once the socket is back.
        closePeer(call);
        call.phase = 'incoming';
        if (state.current === callId) state.current = null;
        showNotice('Not connected to callscope — reconnecting, answer again in a moment.');
        render();
        return;
      }
      call.offerSent = true;
      flushCandidates(call);
    } catch (error) {
      showNotice(`Cannot answer: ${error.message || error}`);
      send({ type: 'reject', call_id: callId });
      endCall(callId, 'failed');
    }
    render();
  }

  function rejectCall(callId) {
    const call = state.calls.get(callId);
    if (!call) return;
    command({ type: 'reject', call_id: callId });
  }

  async function dial(number) {
    number = number.trim();
    if (!number) {
      showNotice('Type a number or an extension to call.');
      $('dial-number').focus();
      return;
    }
    if (state.dialing || panelCall()) return;
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      showNotice('Not connected to callscope — reconnecting, try again in a moment.');
      return;
    }
    const pending = { requestId: requestId(), number, pc: null, stream: null, candidates: [], cancelled: false };
    state.dialing = pending;
    state.lastEnded = null;
    render();
    try {
      const peer = await newPeer((candidate) => {
        const call = pending.callId ? state.calls.get(pending.callId) : null;
        if (call) trickle(call, candidate);
        else pending.candidates.push(candidate);
      });
      pending.pc = peer.pc;
      pending.stream = peer.stream;
      if (pending.cancelled) {
        closePeer(pending);
        return;
      }
      if (!send({ type: 'dial', number, sdp: peer.sdp, request_id: pending.requestId })) {
        throw new Error('not connected');
      }
      pending.replyTimer = setTimeout(() => {
        if (state.dialing !== pending) return;
        failDial(pending, 'callscope did not take the call');
      }, DIAL_REPLY_MS);
    } catch (error) {
      closePeer(pending);
      if (state.dialing === pending) state.dialing = null;
      state.lastEnded = { reason: 'failed', peer: number };
      showNotice(`Cannot call: ${error.message || error}`);
      render();
    }
  }

  function failDial(pending, why) {
    clearTimeout(pending.replyTimer);
    // A `dialing` that still comes for it is hung up at once.
    pending.cancelled = true;
    state.abandonedDials.add(pending.requestId);
    closePeer(pending);
    if (state.dialing === pending) state.dialing = null;
    state.lastEnded = { reason: 'failed', peer: pending.number };
    showNotice(`Cannot call ${pending.number}: ${why}`);
    render();
  }

  // The server's `dialing`: the pending dial becomes a call with its id.
  function onDialing(message) {
    const view = message.call;
    if (!view || !view.call_id) return;
    if (message.request_id && state.abandonedDials.delete(message.request_id)) {
      send({ type: 'hangup', call_id: view.call_id });
      return;
    }
    const pending = state.dialing;
    const ours = pending && (!message.request_id || message.request_id === pending.requestId);
    if (!ours) {
      // Another tab of this agent dialled: shown there, not here.
      return;
    }
    state.dialing = null;
    clearTimeout(pending.replyTimer);
    const call = newCall(view, 'dialing', { pc: pending.pc, stream: pending.stream, placedByUs: true, offerSent: true });
    state.calls.set(view.call_id, call);
    state.current = view.call_id;
    pending.callId = view.call_id;
    for (const candidate of pending.candidates.splice(0)) trickle(call, candidate);
    render();
    if (pending.answer && pending.answer.call_id === view.call_id) applyAnswer(call, pending.answer);
  }

  function onMediaAnswer(message) {
    const call = state.calls.get(message.call_id);
    if (call) {
      applyAnswer(call, message);
      return;
    }
    // The answer is the reply to our `dial`; `dialing` comes by another path (the agent's
    // sessions) and may arrive after it: keep the answer until the call exists here.
    const pending = state.dialing;
    if (pending && message.request_id && message.request_id === pending.requestId) pending.answer = message;
  }

  async function applyAnswer(call, message) {
    if (!call.pc) return;
    try {
      await call.pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
    } catch (error) {
      showNotice(`Audio setup failed: ${error.message || error}`);
      send({ type: 'hangup', call_id: message.call_id });
    }
  }

  function hangup() {
    if (state.dialing) {
      // No call_id yet: the `dialing` reply is hung up as soon as it comes.
      state.dialing.cancelled = true;
      state.abandonedDials.add(state.dialing.requestId);
      clearTimeout(state.dialing.replyTimer);
      closePeer(state.dialing);
      state.lastEnded = { reason: 'agent_hangup', peer: state.dialing.number };
      state.dialing = null;
      render();
      return;
    }
    const call = panelCall();
    if (call && call.view.call_id) command({ type: 'hangup', call_id: call.view.call_id });
  }

  function callCommand(type, extra) {
    const call = panelCall();
    if (!call || !call.view.call_id) return;
    command(Object.assign({ type, call_id: call.view.call_id, request_id: requestId() }, extra || {}));
  }

  function sendDtmf(digits) {
    const call = panelCall();
    if (!call || call.phase !== 'connected' || !DTMF_DIGITS.test(digits)) return;
    callCommand('dtmf', { digits });
    $('dtmf-sent').textContent = ($('dtmf-sent').textContent + digits).slice(-32);
  }

  // ---- server messages ----

  function applyView(view) {
    const call = state.calls.get(view.call_id);
    if (!call) return null;
    call.view = view;
    return call;
  }

  function onHello(message) {
    state.backoffMs = BACKOFF_MIN_MS;
    state.hellos += 1;
    state.connection = 'open';
    state.user = message.user || state.user;
    state.presence = message.presence || state.presence;
    if (state.dialing && state.hellos > 1) {
      // The dial's reply was lost with the old socket: it cannot be matched any more.
      const pending = state.dialing;
      failDial(pending, 'the connection dropped before callscope took the call');
      state.lastEnded = { reason: 'connection_lost', peer: pending.number };
    }
    if (Array.isArray(message.calls)) {
      const listed = new Map(message.calls.filter((c) => c && c.call_id).map((c) => [c.call_id, c]));
      for (const [id] of state.calls) {
        // Ended while the socket was down.
        if (!listed.has(id)) endCall(id, 'normal_clearing');
      }
      for (const view of listed.values()) {
        const known = state.calls.get(view.call_id);
        if (known) {
          known.view = view;
          if (view.state === 'connected') markConnected(known);
          if (known.offerSent) flushCandidates(known);
          continue;
        }
        const ownOutgoing = state.user && view.from === state.user.extension && view.direction !== 'inbound';
        if (view.state === 'ringing' && !ownOutgoing) {
          state.calls.set(view.call_id, newCall(view, 'incoming'));
        } else {
          // A live call of this agent without media here (the page was reloaded): it can
          // still be hung up.
          const call = newCall(view, view.state === 'connected' ? 'connected' : view.state);
          if (view.state === 'connected') markConnected(call);
          state.calls.set(view.call_id, call);
        }
      }
      pickCurrent();
    }
    render();
  }

  function onMessage(message) {
    switch (message.type) {
      case 'hello':
        onHello(message);
        break;
      case 'presence':
        state.presence = message.status;
        renderPresence();
        break;
      case 'pong':
        clearTimeout(state.pongTimer);
        state.pongTimer = null;
        break;
      case 'incoming': {
        const view = message.call;
        if (!view || !view.call_id || state.calls.has(view.call_id)) break;
        state.calls.set(view.call_id, newCall(view, 'incoming'));
        render();
        break;
      }
      case 'dialing':
        onDialing(message);
        break;
      case 'media_answer':
        onMediaAnswer(message);
        break;
      case 'ringing': {
        const call = state.calls.get(message.call_id);
        if (call && call.phase === 'dialing') {
          call.phase = 'ringing';
          render();
        }
        break;
      }
      case 'answered': {
        const call = message.call && applyView(message.call);
        if (call) {
          markConnected(call);
          if (!state.current) state.current = call.view.call_id;
          render();
        }
        break;
      }
      case 'call_update': {
        const call = message.call && applyView(message.call);
        if (call) render();
        break;
      }
      case 'ended':
        endCall(message.call_id, message.reason || 'normal_clearing');
        break;
      case 'transcript':
      case 'alert':
        // Reserved for the live-intelligence issue (#insights).
        break;
      case 'error':
        onError(message);
        break;
      default:
        break;
    }
  }

  function onError(message) {
    const text = message.message || message.code || 'error';
    // A late reply about a call already over here (e.g. a candidate that crossed the
    // `ended`): nothing for the agent to know.
    if (message.code === 'not_found' && message.call_id && !state.calls.has(message.call_id)) return;
    const pending = state.dialing;
    // A server that cannot parse a message cannot echo its request_id either.
    if (pending && (message.request_id === pending.requestId || (!message.request_id && message.code === 'bad_message'))) {
      failDial(pending, text);
      return;
    }
    const call = message.call_id ? state.calls.get(message.call_id) : null;
    if (call && (call.phase === 'connecting' || message.code === 'not_found')) {
      // The answer failed, or the call is gone: nothing left to do with it here.
      endCall(message.call_id, 'failed');
    }
    showNotice(text);
  }

  // ---- the socket ----

  function socketUrl() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}/api/v1/agent/ws`;
  }

  function openSocket() {
    state.wsWanted = true;
    if (state.ws) return;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.connection !== 'reconnecting') state.connection = 'connecting';
    renderConnection();
    const ws = new WebSocket(socketUrl());
    state.ws = ws;
    // `open` is shown on the server's `hello` (the session was accepted), not on the
    // socket's own open event.
    ws.onopen = () => startPing(ws);
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && typeof message.type === 'string') {
        trace('<', message);
        onMessage(message);
      }
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      stopPing();
      if (!state.wsWanted) {
        state.connection = 'closed';
        renderConnection();
        return;
      }
      state.connection = 'reconnecting';
      renderConnection();
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    const delay = state.backoffMs;
    state.backoffMs = Math.min(state.backoffMs * 2, BACKOFF_MAX_MS);
    state.reconnectTimer = setTimeout(async () => {
      state.reconnectTimer = null;
      if (!state.wsWanted) return;
      // A socket refused because the session ended looks like any other drop: ask.
      const me = await fetchMe();
      if (!state.wsWanted) return;
      if (me.status === 401) {
        showLogin('Your session has ended. Sign in again.');
        return;
      }
      if (me.view) {
        state.user = me.view.user;
        state.presence = me.view.presence;
      }
      openSocket();
    }, delay);
  }

  function closeSocket() {
    state.wsWanted = false;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    stopPing();
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      ws.close(1000, 'signed out');
    }
    state.connection = 'closed';
    renderConnection();
  }

  function startPing(ws) {
    stopPing();
    state.pingTimer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: 'ping' }));
      if (!state.pongTimer) {
        state.pongTimer = setTimeout(() => {
          state.pongTimer = null;
          ws.close(4000, 'no pong');
        }, PONG_WITHIN_MS);
      }
    }, PING_EVERY_MS);
  }

  function stopPing() {
    clearInterval(state.pingTimer);
    clearTimeout(state.pongTimer);
    state.pingTimer = null;
    state.pongTimer = null;
  }

  // ---- HTTP ----

  async function fetchMe() {
    try {
      const response = await fetch('/api/v1/agent/me', { credentials: 'same-origin', cache: 'no-store' });
      if (!response.ok) return { status: response.status };
      return { status: response.status, view: await response.json() };
    } catch {
      return { status: 0 };
    }
  }

  async function login(event) {
    event.preventDefault();
    const domain = $('login-domain').value.trim();
    const extension = $('login-extension').value.trim();
    const password = $('login-password').value;
    const error = $('login-error');
    if (!domain || !extension || !password) {
      error.textContent = 'Enter the domain, your extension and your password.';
      error.hidden = false;
      return;
    }
    const submit = $('login-submit');
    submit.disabled = true;
    error.hidden = true;
    try {
      const response = await fetch('/api/v1/agent/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ domain, extension, password }),
      });
      if (response.ok) {
        localStorage.setItem('callscope.domain', domain);
        localStorage.setItem('callscope.extension', extension);
        $('login-password').value = '';
        showPhone(await response.json());
        return;
      }
      error.textContent = response.status === 401
        ? 'Wrong domain, extension or password.'
        : `Sign-in failed (HTTP ${response.status}).`;
      error.hidden = false;
      $('login-password').select();
    } catch {
      error.textContent = 'Cannot reach callscope. Check the connection and try again.';
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  async function logout() {
    for (const call of state.calls.values()) {
      if (call.view.call_id) send({ type: call.phase === 'incoming' ? 'reject' : 'hangup', call_id: call.view.call_id });
    }
    closeSocket();
    try {
      await fetch('/api/v1/agent/logout', { method: 'POST', credentials: 'same-origin' });
    } catch {
      // The session dies with its expiry anyway; the page signs out regardless.
    }
    state.presence = 'offline';
    showLogin('');
  }

  async function togglePresence() {
    const wanted = state.presence === 'available' ? 'away' : 'available';
    if (send({ type: 'set_presence', status: wanted })) return;
    try {
      const response = await fetch('/api/v1/agent/presence', {
        method: 'PUT',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ status: wanted }),
      });
      if (response.ok) {
        const view = await response.json();
        state.presence = view.presence;
        renderPresence();
      } else {
        showNotice(`Presence not changed (HTTP ${response.status}).`);
      }
    } catch {
      showNotice('Cannot reach callscope.');
    }
  }

  // ---- connection quality ----

  async function sampleQuality() {
    const call = panelCall();
    if (!call || !call.pc || call.phase !== 'connected') return;
    const pc = call.pc;
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return;
    }
    let rtt;
    let jitter;
    let lost = 0;
    let received = 0;
    let selectedPair;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) selectedPair = s.selectedCandidatePairId;
    });
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && (s.id === selectedPair || (!selectedPair && s.nominated)) && s.currentRoundTripTime !== undefined) {
        rtt = s.currentRoundTripTime;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        jitter = s.jitter;
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
      }
    });
    if (rtt === undefined) {
      report.forEach((s) => {
        if (s.type === 'remote-inbound-rtp' && s.kind === 'audio' && s.roundTripTime !== undefined) rtt = s.roundTripTime;
      });
    }
    const lossPct = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
    let level = 'good';
    // A call whose media never arrived is not "good": the agent must see that nobody can
    // be heard, whatever the signalling says.
    if (received === 0) level = 'no-audio';
    else if (pc.connectionState === 'failed' || pc.connectionState === 'disconnected') level = 'poor';
    else if ((rtt || 0) > 0.4 || (jitter || 0) > 0.05 || lossPct > 5) level = 'poor';
    else if ((rtt || 0) > 0.2 || (jitter || 0) > 0.03 || lossPct > 1) level = 'fair';
    const el = $('quality');
    el.dataset.quality = level;
    el.dataset.rttMs = rtt === undefined ? '' : String(Math.round(rtt * 1000));
    el.dataset.jitterMs = jitter === undefined ? '' : String(Math.round(jitter * 1000));
    el.dataset.packetsLost = String(lost);
    const parts = [level === 'no-audio' ? 'No audio received' : level[0].toUpperCase() + level.slice(1)];
    if (rtt !== undefined) parts.push(`RTT ${Math.round(rtt * 1000)} ms`);
    if (jitter !== undefined) parts.push(`jitter ${Math.round(jitter * 1000)} ms`);
    parts.push(`lost ${lost} (${lossPct.toFixed(1)} %)`);
    $('quality-text').textContent = parts.join(' · ');
  }

  // ---- keyboard ----

  function typing(target) {
    return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
  }

  function onKey(event) {
    if ($('app').dataset.view !== 'phone' || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    const key = event.key;
    if (!/^[0-9*#]$/.test(key)) return;
    const call = panelCall();
    event.preventDefault();
    if (call && call.phase === 'connected') {
      sendDtmf(key);
    } else {
      const field = $('dial-number');
      field.value += key;
      field.focus();
    }
  }

  // ---- wiring ----

  function wire() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('presence-toggle').addEventListener('click', togglePresence);
    $('dial-form').addEventListener('submit', (event) => {
      event.preventDefault();
      dial($('dial-number').value);
    });
    $('dial-clear').addEventListener('click', () => {
      $('dial-number').value = '';
      $('dial-number').focus();
    });
    $('dialpad').addEventListener('click', (event) => {
      const digit = event.target.closest('button[data-digit]');
      if (!digit) return;
      $('dial-number').value += digit.dataset.digit;
    });
    $('dtmfpad').addEventListener('click', (event) => {
      const key = event.target.closest('button[data-dtmf]');
      if (key) sendDtmf(key.dataset.dtmf);
    });
    $('incoming-answer').addEventListener('click', () => answerCall($('incoming').dataset.callId));
    $('incoming-reject').addEventListener('click', () => rejectCall($('incoming').dataset.callId));
    $('call-hangup').addEventListener('click', hangup);
    $('call-mute').addEventListener('click', () => {
      const call = panelCall();
      if (call) callCommand(call.view.muted ? 'unmute' : 'mute');
    });
    $('call-hold').addEventListener('click', () => {
      const call = panelCall();
      if (call) callCommand(call.view.held ? 'resume' : 'hold');
    });
    $('transfer-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const target = $('transfer-target').value.trim();
      if (!target) {
        showNotice('Type the extension or number to transfer to.');
        $('transfer-target').focus();
        return;
      }
      callCommand('transfer', { target });
      $('call-status').textContent = `Transferring to ${target}…`;
    });
    document.addEventListener('keydown', onKey);
    setInterval(renderTimer, 1000);
    setInterval(sampleQuality, STATS_EVERY_MS);

    if (TEST_MODE) {
      // Tests only (?test=1): drop the socket the way a network failure would.
      window.softphoneTest = {
        dropSocket() {
          if (!state.ws) return false;
          state.ws.close(4001, 'test drop');
          return true;
        },
      };
    }
  }

  async function start() {
    wire();
    const me = await fetchMe();
    if (me.view) showPhone(me.view);
    else showLogin(me.status === 0 ? 'Cannot reach callscope.' : '');
  }

  start();
})();
